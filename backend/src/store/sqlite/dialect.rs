//! What SQLite says for itself in the shared SQL (`store/sql.rs`): how its driver writes
//! the bound values and reads times, and how it explains a plan.

use std::collections::HashMap;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Pool, Sqlite, Type};

use crate::domain::Timestamp;
use crate::store::sql::Sql;
use crate::store::statement::{Arg, Engine, Statement};

impl Sql for Sqlite {
    const ENGINE: Engine = Engine::Sqlite;

    /// `EXPLAIN QUERY PLAN`'s steps, each indented by its depth in the plan.
    async fn explain(pool: &Pool<Self>, statement: &Statement) -> Result<Vec<String>, sqlx::Error> {
        let sql = format!("EXPLAIN QUERY PLAN {}", statement.sql);
        let mut query = sqlx::query_as::<Sqlite, (i64, i64, i64, String)>(&sql);
        for arg in statement.args.iter().cloned() {
            query = query.bind(arg);
        }
        let steps = query.fetch_all(pool).await?;
        let mut depth = HashMap::from([(0, 0)]);
        Ok(steps
            .into_iter()
            .map(|(id, parent, _, detail)| {
                let level = depth.get(&parent).copied().unwrap_or(0) + 1;
                depth.insert(id, level);
                format!("{}{detail}", "  ".repeat(level - 1))
            })
            .collect())
    }
}

/// SQLite stores every value with its own type, so the declared one does not matter.
impl Type<Sqlite> for Arg {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for Arg {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        match self {
            Arg::Int(n) => <i64 as Encode<Sqlite>>::encode_by_ref(n, buf),
            Arg::OptionalInt(n) => <Option<i64> as Encode<Sqlite>>::encode_by_ref(n, buf),
            Arg::Year(n) => <i32 as Encode<Sqlite>>::encode_by_ref(n, buf),
            Arg::Bool(b) => <bool as Encode<Sqlite>>::encode_by_ref(b, buf),
            Arg::Text(text) => <String as Encode<Sqlite>>::encode_by_ref(text, buf),
            Arg::OptionalText(text) => <Option<String> as Encode<Sqlite>>::encode_by_ref(text, buf),
            Arg::Time(stamp) => <String as Encode<Sqlite>>::encode_by_ref(&stamp.as_str().to_owned(), buf),
        }
    }
}

/// Times are stored as the text the API returns.
impl Type<Sqlite> for Timestamp {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<'r> Decode<'r, Sqlite> for Timestamp {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self::from_stored(<String as Decode<Sqlite>>::decode(value)?))
    }
}
