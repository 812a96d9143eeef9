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

/// The monitoring password: Prometheus's and Alertmanager's basic-auth password for
/// [`MONITORING_USER`] (Prometheus and Grafana send it; people sign in with it).
pub const MONITORING_PASSWORD: &str = "monitoring-password";
/// Prometheus's and Alertmanager's `--web.config.file`: the bcrypt hash of that password.
pub const MONITORING_WEB_CONFIG: &str = "monitoring-web.yml";
/// Grafana's admin password (read through `GF_SECURITY_ADMIN_PASSWORD__FILE`).
pub const GRAFANA_PASSWORD: &str = "grafana-password";
/// The one user of Prometheus's and Alertmanager's web interfaces.
pub const MONITORING_USER: &str = "bookstore";
/// bcrypt's work factor: Prometheus checks a hash once per connection and caches the result.
const BCRYPT_COST: u32 = 10;

/// What `init` did with each file.
#[derive(Debug, PartialEq, Eq)]
pub enum Made {
    Created(&'static str),
    Kept(&'static str),
    Replaced(&'static str),
}

/// Makes the missing secrets in `dir`: with `database_url` (a URL with `{password}` in it),
/// a PostgreSQL password (`password` if given, else 32 random hex characters) in
/// `postgres_dir` (a folder only the database container mounts; `dir` if none) and the
/// backend's database URL in `dir`. A password an earlier release kept in `dir` is moved.
pub fn init(
    dir: &Path,
    postgres_dir: Option<&Path>,
    database_url: Option<&str>,
    password: Option<&str>,
) -> std::io::Result<Vec<Made>> {
    fs::create_dir_all(dir)?;
    let mut made = Vec::new();
    if let Some(template) = database_url {
        let password_file = match postgres_dir {
            Some(postgres_dir) => {
                fs::create_dir_all(postgres_dir)?;
                let file = postgres_dir.join(POSTGRES_PASSWORD);
                move_if_absent(&dir.join(POSTGRES_PASSWORD), &file)?;
                file
            }
            None => dir.join(POSTGRES_PASSWORD),
        };
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

/// Makes the missing monitoring secrets in `dir` (a folder only the monitoring containers
/// mount): the monitoring password and its web config, and Grafana's admin password
/// (`grafana_password` if given, else random: Grafana takes it on its first start only).
pub fn init_monitoring(dir: &Path, grafana_password: Option<&str>) -> std::io::Result<Vec<Made>> {
    fs::create_dir_all(dir)?;
    let mut made = Vec::new();
    let password_file = dir.join(MONITORING_PASSWORD);
    let web_file = dir.join(MONITORING_WEB_CONFIG);
    let password = match fs::read_to_string(&password_file) {
        Ok(existing) => {
            made.push(Made::Kept(MONITORING_PASSWORD));
            existing.trim().to_owned()
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let password = crate::auth::secret::random_hex(16);
            // A web config of an earlier password would no longer match it.
            remove_if_present(&web_file)?;
            write_new(&password_file, &password)?;
            made.push(Made::Created(MONITORING_PASSWORD));
            password
        }
        Err(error) => return Err(error),
    };
    if web_file.exists() {
        made.push(Made::Kept(MONITORING_WEB_CONFIG));
    } else {
        write_new(&web_file, &web_config(&password)?)?;
        made.push(Made::Created(MONITORING_WEB_CONFIG));
    }
    let grafana_file = dir.join(GRAFANA_PASSWORD);
    if grafana_file.exists() {
        made.push(Made::Kept(GRAFANA_PASSWORD));
    } else {
        let chosen = grafana_password
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map_or_else(|| crate::auth::secret::random_hex(16), str::to_owned);
        write_new(&grafana_file, &chosen)?;
        made.push(Made::Created(GRAFANA_PASSWORD));
    }
    Ok(made)
}

/// A Prometheus/Alertmanager web configuration (the exporter toolkit's `web.config.file`)
/// that lets [`MONITORING_USER`] in with `password`, and nobody else.
pub fn web_config(password: &str) -> std::io::Result<String> {
    let hash = bcrypt::hash(password, BCRYPT_COST).map_err(std::io::Error::other)?;
    Ok(format!(
        "# Made by `bookstore init-secrets`: basic auth for Prometheus's and Alertmanager's\n\
         # web interfaces and APIs (user {MONITORING_USER}; the password is in {MONITORING_PASSWORD}).\n\
         basic_auth_users:\n  {MONITORING_USER}: {hash}"
    ))
}

/// Moves `from` to `to` (possibly another file system) unless `to` exists or `from` does not.
fn move_if_absent(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        return Ok(());
    }
    match fs::read_to_string(from) {
        Ok(content) => {
            write_new(to, content.trim_end())?;
            fs::remove_file(from)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
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
        let made = init(dir.path(), None, Some(template), None).unwrap();
        assert_eq!(
            made,
            [Made::Created(POSTGRES_PASSWORD), Made::Created(DATABASE_URL)]
        );
        let password = fs::read_to_string(dir.path().join(POSTGRES_PASSWORD)).unwrap();
        assert_eq!(password.trim().len(), 32);
        let url = fs::read_to_string(dir.path().join(DATABASE_URL)).unwrap();
        assert_eq!(url.trim(), template.replace("{password}", password.trim()));
        let again = init(dir.path(), None, Some(template), Some("ignored")).unwrap();
        assert_eq!(again, [Made::Kept(POSTGRES_PASSWORD), Made::Kept(DATABASE_URL)]);
        let mode = fs::metadata(dir.path().join(POSTGRES_PASSWORD))
            .unwrap()
            .permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o640);
    }

    #[test]
    fn the_monitoring_secrets_are_made_once_with_a_hash_of_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let made = init_monitoring(dir.path(), Some("chosen grafana password")).unwrap();
        assert_eq!(
            made,
            [
                Made::Created(MONITORING_PASSWORD),
                Made::Created(MONITORING_WEB_CONFIG),
                Made::Created(GRAFANA_PASSWORD)
            ]
        );
        let password = fs::read_to_string(dir.path().join(MONITORING_PASSWORD)).unwrap();
        assert_eq!(password.trim().len(), 32);
        let web = fs::read_to_string(dir.path().join(MONITORING_WEB_CONFIG)).unwrap();
        let hash = web
            .lines()
            .find_map(|line| line.strip_prefix("  bookstore: "))
            .unwrap();
        assert!(hash.starts_with("$2b$10$"), "{web}");
        assert!(bcrypt::verify(password.trim(), hash).unwrap());
        assert!(!bcrypt::verify("a guess", hash).unwrap());
        assert_eq!(
            fs::read_to_string(dir.path().join(GRAFANA_PASSWORD))
                .unwrap()
                .trim(),
            "chosen grafana password"
        );

        let again = init_monitoring(dir.path(), Some("ignored")).unwrap();
        assert_eq!(
            again,
            [
                Made::Kept(MONITORING_PASSWORD),
                Made::Kept(MONITORING_WEB_CONFIG),
                Made::Kept(GRAFANA_PASSWORD)
            ]
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(MONITORING_WEB_CONFIG)).unwrap(),
            web
        );

        // A removed password is replaced, and the web config with it.
        fs::remove_file(dir.path().join(MONITORING_PASSWORD)).unwrap();
        init_monitoring(dir.path(), None).unwrap();
        let new = fs::read_to_string(dir.path().join(MONITORING_PASSWORD)).unwrap();
        let web = fs::read_to_string(dir.path().join(MONITORING_WEB_CONFIG)).unwrap();
        let hash = web.lines().find_map(|l| l.strip_prefix("  bookstore: ")).unwrap();
        assert!(bcrypt::verify(new.trim(), hash).unwrap());
    }

    #[test]
    fn the_database_password_lives_apart_from_the_backends_secrets() {
        let (backend, postgres) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let template = "postgres://bookstore:{password}@postgres:5432/bookstore";
        init(backend.path(), Some(postgres.path()), Some(template), None).unwrap();
        assert!(!backend.path().join(POSTGRES_PASSWORD).exists());
        let password = fs::read_to_string(postgres.path().join(POSTGRES_PASSWORD)).unwrap();
        let url = fs::read_to_string(backend.path().join(DATABASE_URL)).unwrap();
        assert_eq!(url.trim(), template.replace("{password}", password.trim()));

        // An earlier release kept the password beside the backend's secrets: it is moved,
        // so that the database initialised with it keeps matching the URL.
        let (backend, postgres) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        init(backend.path(), None, Some(template), None).unwrap();
        let old = fs::read_to_string(backend.path().join(POSTGRES_PASSWORD)).unwrap();
        let made = init(backend.path(), Some(postgres.path()), Some(template), None).unwrap();
        assert_eq!(made, [Made::Kept(POSTGRES_PASSWORD), Made::Kept(DATABASE_URL)]);
        assert_eq!(
            fs::read_to_string(postgres.path().join(POSTGRES_PASSWORD)).unwrap(),
            old
        );
        assert!(!backend.path().join(POSTGRES_PASSWORD).exists());
    }

    #[test]
    fn a_chosen_password_is_used_and_encoded_in_the_url() {
        let dir = tempfile::tempdir().unwrap();
        init(
            dir.path(),
            None,
            Some("postgres://u:{password}@h/db"),
            Some("p@ss word"),
        )
        .unwrap();
        let url = fs::read_to_string(dir.path().join(DATABASE_URL)).unwrap();
        assert_eq!(url.trim(), "postgres://u:p%40ss+word@h/db");
    }
}
