//! A statement and its parameters, built once and bound by whichever
//! [`Dialect`](super::Dialect) runs it.

use sam_core::domain::Timestamp;
use sam_core::ports::StoreError;
use sqlx::query::Query;
use sqlx::{Database, Encode, Type};

use super::values::ts;

/// One parameter, in the few storage types the schema uses.
#[derive(Debug)]
pub enum Param {
    /// `TEXT`, possibly `NULL`.
    Text(Option<String>),
    /// `BIGINT` / `INTEGER`, possibly `NULL`.
    Int(Option<i64>),
    /// `BOOLEAN`.
    Flag(bool),
    /// `BYTEA` / `BLOB`.
    Bytes(Vec<u8>),
}

/// SQL text with its parameters `$1`, `$2`, … in order.
#[derive(Debug)]
pub struct Statement {
    pub(super) sql: &'static str,
    pub(super) params: Vec<Param>,
}

impl Statement {
    /// A statement with no parameters yet.
    pub(super) fn new(sql: &'static str) -> Self {
        Self { sql, params: Vec::new() }
    }

    /// Binds the next parameter as text.
    pub(super) fn text(mut self, value: impl Into<String>) -> Self {
        self.params.push(Param::Text(Some(value.into())));
        self
    }

    /// Binds the next parameter as text or `NULL`.
    pub(super) fn opt_text(mut self, value: Option<impl Into<String>>) -> Self {
        self.params.push(Param::Text(value.map(Into::into)));
        self
    }

    /// Binds the next parameter as an integer.
    pub(super) fn int(mut self, value: i64) -> Self {
        self.params.push(Param::Int(Some(value)));
        self
    }

    /// Binds the next parameter as an integer or `NULL`.
    pub(super) fn opt_int(mut self, value: Option<i64>) -> Self {
        self.params.push(Param::Int(value));
        self
    }

    /// Binds the next parameter as a boolean.
    pub(super) fn flag(mut self, value: bool) -> Self {
        self.params.push(Param::Flag(value));
        self
    }

    /// Binds the next parameter as bytes.
    pub(super) fn bytes(mut self, value: &[u8]) -> Self {
        self.params.push(Param::Bytes(value.to_vec()));
        self
    }

    /// Binds the next parameter as a stored timestamp (nanoseconds).
    pub(super) fn time(self, value: Timestamp) -> Result<Self, StoreError> {
        Ok(self.int(ts(value)?))
    }

    /// Binds the next parameter as a stored timestamp or `NULL`.
    pub(super) fn opt_time(self, value: Option<Timestamp>) -> Result<Self, StoreError> {
        Ok(self.opt_int(value.map(ts).transpose()?))
    }

    /// The `sqlx` query for a database that can encode every [`Param`].
    pub(super) fn into_query<'q, DB>(self) -> Query<'q, DB, DB::Arguments>
    where
        DB: Database,
        Option<String>: Encode<'q, DB> + Type<DB>,
        Option<i64>: Encode<'q, DB> + Type<DB>,
        bool: Encode<'q, DB> + Type<DB>,
        Vec<u8>: Encode<'q, DB> + Type<DB>,
    {
        let mut query = sqlx::query::<DB>(self.sql);
        for param in self.params {
            query = match param {
                Param::Text(v) => query.bind(v),
                Param::Int(v) => query.bind(v),
                Param::Flag(v) => query.bind(v),
                Param::Bytes(v) => query.bind(v),
            };
        }
        query
    }
}
