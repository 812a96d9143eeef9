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

/// `bytes` random bytes from the operating system, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the operating system provides randomness");
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// What `init` did with each file.
#[derive(Debug, PartialEq, Eq)]
pub enum Made {
    Created(&'static str),
    Kept(&'static str),
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
                    .map_or_else(|| random_hex(16), str::to_owned);
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
