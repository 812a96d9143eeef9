//! A request body as the book rules read it: the members of one JSON object, in the order
//! sent, each value kept as its raw JSON text.
//!
//! Raw values let each field parse its own value with its own rule: a year of `1e309` is a
//! number out of the year's range (a 422 naming `year`), not a body that cannot be read at
//! all. Keeping every member, rather than a map, lets a name sent twice be reported instead
//! of the last one silently winning.

use std::collections::HashSet;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The members of a JSON object.
#[derive(Debug)]
pub struct JsonObject(Vec<(String, Box<RawValue>)>);

/// Why a body is not a JSON object.
#[derive(Debug, PartialEq, Eq)]
pub enum NotAnObject {
    /// Not JSON at all (a syntax error, or nothing): the request is malformed.
    Malformed(String),
    /// Valid JSON, but an array, a string, a number...
    WrongShape,
}

impl JsonObject {
    pub fn parse(bytes: &[u8]) -> Result<Self, NotAnObject> {
        serde_json::from_slice(bytes).map_err(|error| match error.classify() {
            serde_json::error::Category::Data => NotAnObject::WrongShape,
            _ => NotAnObject::Malformed(error.to_string()),
        })
    }

    /// The value of the member `name`, if it was sent (the first, if sent twice: a repeat is
    /// reported by [`Self::repeated`]).
    pub fn get(&self, name: &str) -> Option<&RawValue> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| &**value)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(key, _)| key.as_str())
    }

    /// Names sent more than once, each once, in the order of their second appearance. In
    /// time linear in the number of members: a body of many distinct names (anyone may send
    /// one to `POST /session`) costs no more per name than a small one.
    pub fn repeated(&self) -> Vec<&str> {
        let mut seen = HashSet::with_capacity(self.0.len());
        let mut reported = HashSet::new();
        self.names()
            .filter(|name| !seen.insert(*name) && reported.insert(*name))
            .collect()
    }
}

impl<'de> serde::Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;

        impl<'de> Visitor<'de> for Members {
            type Value = JsonObject;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonObject, A::Error> {
                let mut members = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push((name, value));
                }
                Ok(JsonObject(members))
            }
        }

        deserializer.deserialize_map(Members)
    }
}

/// Test and seed helper: the object of a `serde_json::Value`.
impl TryFrom<serde_json::Value> for JsonObject {
    type Error = NotAnObject;

    fn try_from(value: serde_json::Value) -> Result<Self, NotAnObject> {
        let bytes = serde_json::to_vec(&value).map_err(|e| NotAnObject::Malformed(e.to_string()))?;
        Self::parse(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_keep_their_order_and_repeats() {
        let object = JsonObject::parse(br#"{"b": 1, "a": [1, {"x": 2}], "b": "two"}"#).unwrap();
        assert_eq!(object.names().collect::<Vec<_>>(), ["b", "a", "b"]);
        assert_eq!(object.get("b").unwrap().get(), "1");
        assert_eq!(object.get("a").unwrap().get(), r#"[1, {"x": 2}]"#);
        assert_eq!(object.repeated(), ["b"]);
    }

    #[test]
    fn each_repeated_name_is_reported_once_among_many_distinct_ones() {
        let mut body = String::from("{");
        for n in 0..6000 {
            body.push_str(&format!("\"k{n}\": {n}, "));
        }
        body.push_str(r#""k7": 0, "k3": 1, "k7": 2}"#);
        let object = JsonObject::parse(body.as_bytes()).unwrap();
        assert_eq!(object.repeated(), ["k7", "k3"]);
    }

    #[test]
    fn a_number_too_large_for_a_float_is_still_valid_json() {
        let object = JsonObject::parse(br#"{"year": 1e309}"#).unwrap();
        assert_eq!(object.get("year").unwrap().get(), "1e309");
    }

    #[test]
    fn malformed_json_and_other_shapes_are_told_apart() {
        assert!(matches!(
            JsonObject::parse(b"{\"a\": "),
            Err(NotAnObject::Malformed(_))
        ));
        assert!(matches!(
            JsonObject::parse(b"{} x"),
            Err(NotAnObject::Malformed(_))
        ));
        assert!(matches!(JsonObject::parse(b""), Err(NotAnObject::Malformed(_))));
        assert_eq!(JsonObject::parse(b"[1]").unwrap_err(), NotAnObject::WrongShape);
        assert_eq!(JsonObject::parse(b"\"x\"").unwrap_err(), NotAnObject::WrongShape);
    }
}
