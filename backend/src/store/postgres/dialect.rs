//! What PostgreSQL says for itself in the shared SQL (`store/sql.rs`): how its driver writes
//! the bound values (each as its column's type) and reads `timestamptz`, and how it explains
//! a plan.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Pool, Postgres, Type};
use time::OffsetDateTime;

use crate::domain::Timestamp;
use crate::store::sql::Sql;
use crate::store::statement::{Arg, Engine, Statement};

impl Sql for Postgres {
    const ENGINE: Engine = Engine::Postgres;

    /// `EXPLAIN`'s lines.
    async fn explain(pool: &Pool<Self>, statement: &Statement) -> Result<Vec<String>, sqlx::Error> {
        let sql = format!("EXPLAIN {}", statement.sql);
        let mut query = sqlx::query_scalar::<Postgres, String>(&sql);
        for arg in statement.args.iter().cloned() {
            query = query.bind(arg);
        }
        query.fetch_all(pool).await
    }
}

/// The type each value is sent as is its own ([`Encode::produces`]); this one is only the
/// fallback sqlx asks for.
impl Type<Postgres> for Arg {
    fn type_info() -> PgTypeInfo {
        <String as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Arg {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        match self {
            Arg::Int(n) => <i64 as Encode<Postgres>>::encode_by_ref(n, buf),
            Arg::OptionalInt(n) => <Option<i64> as Encode<Postgres>>::encode_by_ref(n, buf),
            Arg::Year(n) => <i32 as Encode<Postgres>>::encode_by_ref(n, buf),
            Arg::Bool(b) => <bool as Encode<Postgres>>::encode_by_ref(b, buf),
            Arg::Text(text) => <String as Encode<Postgres>>::encode_by_ref(text, buf),
            Arg::OptionalText(text) => <Option<String> as Encode<Postgres>>::encode_by_ref(text, buf),
            Arg::Time(stamp) => <OffsetDateTime as Encode<Postgres>>::encode_by_ref(&stamp.parse()?, buf),
        }
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(match self {
            Arg::Int(_) | Arg::OptionalInt(_) => <i64 as Type<Postgres>>::type_info(),
            Arg::Year(_) => <i32 as Type<Postgres>>::type_info(),
            Arg::Bool(_) => <bool as Type<Postgres>>::type_info(),
            Arg::Text(_) | Arg::OptionalText(_) => <String as Type<Postgres>>::type_info(),
            Arg::Time(_) => <OffsetDateTime as Type<Postgres>>::type_info(),
        })
    }
}

/// `timestamptz`, read as the API writes times (formatted here rather than by `to_char`, which
/// costs the database a tenth of a primary-key lookup).
impl Type<Postgres> for Timestamp {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
}

impl<'r> Decode<'r, Postgres> for Timestamp {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self::of(<OffsetDateTime as Decode<Postgres>>::decode(value)?))
    }
}
