// Refreshes the README's screenshots (docs/images/) from the real stack with the sample
// catalogue: `node tests/e2e/screenshot.mjs`. Not a test; scripts/test.sh does not run it.

import path from 'node:path';
import { ROOT, startStack } from './harness.mjs';

const stack = await startStack({ demoData: true });
try {
  const token = stack.createToken('alice');
  for (const [name, colorScheme] of [['ui', 'light'], ['ui-dark', 'dark']]) {
    const page = await stack.page({ signedIn: false, colorScheme, viewport: { width: 1200, height: 760 } });
    // Signed in as a user would be, with a token of their own.
    await page.context().request.post(`${stack.base}/session`, { data: { token }, headers: { Origin: stack.base } });
    await page.goto(stack.base);
    await page.locator('#account-status').filter({ hasText: 'alice' }).waitFor();
    await page.locator('#book-rows tr').first().waitFor();
    await page.screenshot({ path: path.join(ROOT, 'docs', 'images', `${name}.png`) });
  }
} finally {
  await stack.close();
}
