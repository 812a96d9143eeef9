//! Migrations are append-only. sqlx records the checksum of every migration it applies and
//! refuses to open a database whose applied migration has changed since ("previously applied
//! but has been modified"), so editing a released migration strands every database made
//! before the edit. To change the schema, add a new migration; then add its checksum below.
//!
//! The checksums are SHA-384 of the files, as sqlx computes them (`sha384sum FILE`).

use sqlx::migrate::Migrator;

/// Every released SQLite migration: (version, checksum). Never edit an entry; append.
const SQLITE: &[(i64, &str)] = &[
    (
        1,
        "4e69afd0cd5c62f77f9e18ed032d3b5396e820d9fabe288ed937294ad862f7eb44b9f1a98701d46ad665062a3011d614",
    ),
    (
        2,
        "af6f43b03464b0f6fcdea78f7cbc1a04b35ee4227fc5cf31f1615eb1116ca07dfaf1383c116206137f769715fa433438",
    ),
    (
        3,
        "4a582feb2cfcf302048c0a8a47f5c0742fd9f190d9b3349e0c41f0058be6ef4bccf694a087324f864cf8edc381e8fb9f",
    ),
    (
        4,
        "4e478114dc529215b0b6606a599003507643ced36dea34733255b9beee4c7540b219ed10356ed203dd5405a2f3fe7b6d",
    ),
    (
        5,
        "3b424ec1b55da89c89698250fbdfad006b015880cf7ba58fc1efb53a9c9316032bd32d476d5299311191b80b0649411e",
    ),
];

/// Every released PostgreSQL migration: (version, checksum). Never edit an entry; append.
const POSTGRES: &[(i64, &str)] = &[
    (
        1,
        "6f58663aa08c13bc414994e56c28ca36d82b05438cf496925e65b8c4d5813cff977bedefb2cec86ec84a8c8803eaa326",
    ),
    (
        2,
        "64ab03990afd12f2565be3e12d45af1ea56bd79a3a7740b780ad769551776492a0f1b429ee3cc5172c5e96063c3da4fc",
    ),
    (
        3,
        "b669b12a9f27966c58cf5f6e2cc153dae744f3c5b04d2f976df10b3095b6a19410529df7c75b4e094312a9007104236a",
    ),
    (
        4,
        "081a126ecb82a21e5fa241d8a7f5cb7fc9ea514279a226c3caaaf3aa2669ba186b862d8188ccfebe587048d5198c8144",
    ),
    (
        5,
        "acb4d1c868c8d2a23d79ffbd2863086ccb3a5e0fa0583e12f48136bbc5f04057c5944091b930daa04c4604a2e3c5506f",
    ),
    (
        6,
        "637dc35fce78986100ac8a5ee896582ecf206a6072a31a97eba56c6f07beb5497e2b376fb5d9a8820a9ff8b27f52ab6f",
    ),
];

fn checksums(migrator: &Migrator) -> Vec<(i64, String)> {
    migrator
        .iter()
        .map(|m| {
            let hex = m.checksum.iter().map(|b| format!("{b:02x}")).collect();
            (m.version, hex)
        })
        .collect()
}

fn assert_append_only(engine: &str, folder: &str, released: &[(i64, &str)], migrator: &Migrator) {
    let current = checksums(migrator);
    for (version, checksum) in released {
        let now = current.iter().find(|(v, _)| v == version);
        assert!(
            now.is_some(),
            "{engine}: released migration {version} is gone from {folder}: a database that applied it \
             can no longer be opened. Put it back."
        );
        assert_eq!(
            now.map(|(_, c)| c.as_str()),
            Some(*checksum),
            "{engine}: released migration {version} in {folder} was edited. Revert the edit and add a new \
             migration instead: sqlx refuses to open a database whose applied migration changed."
        );
    }
    let newest = released.last().map_or(0, |(v, _)| *v);
    if let Some((version, checksum)) = current.iter().find(|(v, _)| *v > newest) {
        panic!(
            "{engine}: migration {version} in {folder} is new: once it is final, add ({version}, \"{checksum}\") \
             to tests/migrations.rs, and never edit it after that"
        );
    }
}

#[test]
fn released_sqlite_migrations_never_change() {
    assert_append_only(
        "SQLite",
        "migrations/",
        SQLITE,
        &sqlx_macros::migrate!("./migrations"),
    );
}

#[test]
fn released_postgres_migrations_never_change() {
    assert_append_only(
        "PostgreSQL",
        "migrations/postgres/",
        POSTGRES,
        &sqlx_macros::migrate!("./migrations/postgres"),
    );
}
