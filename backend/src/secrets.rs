//! `bookstore init-secrets`: the secrets a container deployment needs and nobody should commit
//! or type, made once, as files in a folder only the stack's containers mount (the compose
//! files' `bookstore-secrets` volume). A file that exists is kept, so a restart never changes
//! a password the database was initialised with.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The PostgreSQL password, in its own file (the database container reads it).
pub const POSTGRES_PASSWORD: &str = "postgres-password";
/// The backend's `DATABASE_URL`, password included (read through `DATABASE_URL_FILE`).
pub const DATABASE_URL: &str = "database-url";

/// The operator token (read through `BOOKSTORE_ADMIN_TOKEN_FILE`).
pub const ADMIN_TOKEN: &str = "admin-token";

/// What `init` did with each file.
#[derive(Debug, PartialEq, Eq)]
pub enum Made {
    Created(&'static str),
    Kept(&'static str),
    Replaced(&'static str),
}

/// Makes the missing secrets in `dir`: with `database_url` (a URL with `{password}` in it),
/// a PostgreSQL password (`password` if given, else 32 random hex characters) and the
/// backend's database URL.
pub fn init(dir: &Path, database_url: Option<&str>, password: Option<&str>) -> std::io::Result<Vec<Made>> {
    fs::create_dir_all(dir)?;
    let mut made = Vec::new();
    if let Some(template) = database_url {
        let password_file = dir.join(POSTGRES_PASSWORD);
        let password = match fs::read_to_string(&password_file) {
            Ok(existing) => {
                made.push(Made::Kept(POSTGRES_PASSWORD));
                existing.trim().to_owned()
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let chosen = password
                    .filter(|p| !p.is_empty())
                    .map_or_else(|| crate::auth::secret::random_hex(16), str::to_owned);
                write_new(&password_file, &chosen)?;
                made.push(Made::Created(POSTGRES_PASSWORD));
                chosen
            }
            Err(error) => return Err(error),
        };
        let url_file = dir.join(DATABASE_URL);
        if url_file.exists() {
            made.push(Made::Kept(DATABASE_URL));
        } else {
            let encoded: String = form_urlencoded::byte_serialize(password.as_bytes()).collect();
            write_new(&url_file, &template.replace("{password}", &encoded))?;
            made.push(Made::Created(DATABASE_URL));
        }
    }
    Ok(made)
}

/// Makes the operator token file in `dir`: `chosen` (checked as `BOOKSTORE_ADMIN_TOKEN`
/// is) replaces whatever is there, so that `.env` stays the one place it is chosen; without
/// it, a file that exists is kept and a missing one gets a random token shaped like an API
/// token (`bks_` and 64 hex digits, so that secret scanners recognise it).
pub fn init_admin_token(dir: &Path, chosen: Option<&str>) -> Result<Made, String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let path = dir.join(ADMIN_TOKEN);
    let existing = fs::read_to_string(&path).ok();
    match chosen.map(str::trim).filter(|c| !c.is_empty()) {
        Some(chosen) => {
            crate::auth::secret::OperatorToken::new(chosen)
                .map_err(|e| format!("BOOKSTORE_ADMIN_TOKEN: {e}"))?;
            if existing.as_deref().map(str::trim) == Some(chosen) {
                return Ok(Made::Kept(ADMIN_TOKEN));
            }
            let replacement = dir.join(format!(".{ADMIN_TOKEN}.new"));
            let _ = fs::remove_file(&replacement);
            write_new(&replacement, chosen)
                .map_err(|e| format!("cannot write {}: {e}", replacement.display()))?;
            fs::rename(&replacement, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(if existing.is_some() {
                Made::Replaced(ADMIN_TOKEN)
            } else {
                Made::Created(ADMIN_TOKEN)
            })
        }
        None if existing.is_some() => Ok(Made::Kept(ADMIN_TOKEN)),
        None => {
            write_new(&path, &crate::auth::secret::new_token())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(Made::Created(ADMIN_TOKEN))
        }
    }
}

/// Writes a new file readable by its owner and group only (the database container reads it
/// as a member of the backend's group), failing if it exists.
fn write_new(path: &Path, content: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)?;
    file.write_all(content.as_bytes())?;
    file.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_token_is_made_once_or_taken_from_the_environment() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(ADMIN_TOKEN);
        assert_eq!(init_admin_token(dir.path(), None), Ok(Made::Created(ADMIN_TOKEN)));
        let made = fs::read_to_string(&file).unwrap();
        assert!(crate::auth::secret::looks_like_token(made.trim()), "{made}");
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(
            init_admin_token(dir.path(), Some("")),
            Ok(Made::Kept(ADMIN_TOKEN))
        );
        assert_eq!(fs::read_to_string(&file).unwrap(), made, "kept across restarts");

        let chosen = "chosen-in-dot-env-0123456789";
        assert_eq!(
            init_admin_token(dir.path(), Some(chosen)),
            Ok(Made::Replaced(ADMIN_TOKEN))
        );
        assert_eq!(fs::read_to_string(&file).unwrap().trim(), chosen);
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(
            init_admin_token(dir.path(), Some(chosen)),
            Ok(Made::Kept(ADMIN_TOKEN))
        );
        let weak = init_admin_token(dir.path(), Some("short"));
        assert!(weak.is_err_and(|e| e.contains("BOOKSTORE_ADMIN_TOKEN")));
        assert_eq!(
            fs::read_to_string(&file).unwrap().trim(),
            chosen,
            "a refused token changes nothing"
        );
    }

    #[test]
    fn secrets_are_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let template = "postgres://bookstore:{password}@postgres:5432/bookstore";
        let made = init(dir.path(), Some(template), None).unwrap();
        assert_eq!(
            made,
            [Made::Created(POSTGRES_PASSWORD), Made::Created(DATABASE_URL)]
        );
        let password = fs::read_to_string(dir.path().join(POSTGRES_PASSWORD)).unwrap();
        assert_eq!(password.trim().len(), 32);
        let url = fs::read_to_string(dir.path().join(DATABASE_URL)).unwrap();
        assert_eq!(url.trim(), template.replace("{password}", password.trim()));
        let again = init(dir.path(), Some(template), Some("ignored")).unwrap();
        assert_eq!(again, [Made::Kept(POSTGRES_PASSWORD), Made::Kept(DATABASE_URL)]);
        let mode = fs::metadata(dir.path().join(POSTGRES_PASSWORD))
            .unwrap()
            .permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o640);
    }

    #[test]
    fn a_chosen_password_is_used_and_encoded_in_the_url() {
        let dir = tempfile::tempdir().unwrap();
        init(
            dir.path(),
            Some("postgres://u:{password}@h/db"),
            Some("p@ss word"),
        )
        .unwrap();
        let url = fs::read_to_string(dir.path().join(DATABASE_URL)).unwrap();
        assert_eq!(url.trim(), "postgres://u:p%40ss+word@h/db");
    }
}
