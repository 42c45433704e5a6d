//! Owns meta-proxy routing records: the JSON in ZooKeeper node `<root>/<table>` that tells
//! meta-proxy which cluster serves a table, and the rules meta-proxy applies to it.
//!
//! This file is pure; [`zk`] does the ZooKeeper I/O.
//!
//! # Format
//! ```text
//! {"cluster_name":"c3srv-a","meta_addrs":"10.0.0.1:34601,10.0.0.2:34601"}
//! ```
//! `meta_addrs` is one comma-separated string, not an array (the meta-proxy RFC shows an array
//! under other names, but meta-proxy itself reads only this shape).

pub mod session;
#[cfg(test)]
pub(crate) mod test_zk;
pub mod zk;

use serde_json::{Map, Value};

/// Where meta-proxy sends the clients of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The cluster's name; meta-proxy ignores it, the migrator checks it before switching.
    pub cluster_name: String,
    /// The cluster's meta servers, `host:port` each; meta-proxy needs at least two.
    pub meta_addrs: Vec<String>,
}

/// Why bytes read from a routing node are not a route meta-proxy can use.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The bytes are not JSON at all.
    #[error("routing record is not valid JSON: {0}")]
    Json(serde_json::Error),
    /// The JSON is an array, string, number, ...
    #[error("routing record must be a JSON object, found {found}")]
    NotObject { found: &'static str },
    /// A required field is absent (field names are exact, e.g. not `cluster` or `meta-addrs`).
    #[error("routing record has no `{field}` field")]
    MissingField { field: &'static str },
    /// A field holds something other than a string; an array of addresses lands here.
    #[error("routing record field `{field}` must be a string, found {found}")]
    NotString {
        field: &'static str,
        found: &'static str,
    },
    /// `cluster_name` is empty, so the migrator cannot tell which cluster the table is on.
    #[error("routing record field `cluster_name` is empty")]
    EmptyClusterName,
    /// Fewer than two addresses: meta-proxy answers ERR_INVALID_DATA for such a table.
    #[error(
        "routing record lists {count} meta address(es) in `meta_addrs` ({raw:?}); meta-proxy \
         needs at least 2 and answers ERR_INVALID_DATA otherwise"
    )]
    TooFewMetaAddrs { count: usize, raw: String },
    /// An entry of `meta_addrs` is not `host:port`.
    #[error("routing record meta address {entry:?} is not host:port")]
    BadMetaAddr { entry: String },
}

impl Route {
    /// The node data meta-proxy reads, exactly `{"cluster_name":"…","meta_addrs":"a:1,b:2"}`.
    #[must_use]
    pub fn to_json(&self) -> String {
        // A Map keeps this order both with and without serde_json's `preserve_order`.
        let mut object = Map::new();
        object.insert(
            "cluster_name".into(),
            Value::String(self.cluster_name.clone()),
        );
        object.insert(
            "meta_addrs".into(),
            Value::String(self.meta_addrs.join(",")),
        );
        Value::Object(object).to_string()
    }

    /// Parses node data, accepting only what meta-proxy can route with. Unknown extra fields
    /// are ignored, as meta-proxy ignores them.
    ///
    /// # Errors
    /// A [`RouteError`] naming the first thing that is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Route, RouteError> {
        let value: Value = serde_json::from_slice(bytes).map_err(RouteError::Json)?;
        let Value::Object(object) = value else {
            return Err(RouteError::NotObject {
                found: kind(&value),
            });
        };
        let cluster_name = string_field(&object, "cluster_name")?;
        if cluster_name.is_empty() {
            return Err(RouteError::EmptyClusterName);
        }
        let meta_addrs = parse_meta_addrs(string_field(&object, "meta_addrs")?)?;
        Ok(Route {
            cluster_name: cluster_name.to_owned(),
            meta_addrs,
        })
    }
}

/// The routing node of `table`: `<root>/<table>`, with or without a trailing slash on `root`.
#[must_use]
pub fn node_path(root: &str, table: &str) -> String {
    format!("{}/{table}", root.trim_end_matches('/'))
}

fn string_field<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, RouteError> {
    match object.get(field) {
        None => Err(RouteError::MissingField { field }),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(RouteError::NotString {
            field,
            found: kind(other),
        }),
    }
}

/// meta-proxy splits on commas and refuses fewer than two entries; empty or port-less entries
/// are refused here too, because a client could never reach them.
fn parse_meta_addrs(raw: &str) -> Result<Vec<String>, RouteError> {
    if raw.trim().is_empty() {
        return Err(RouteError::TooFewMetaAddrs {
            count: 0,
            raw: raw.to_owned(),
        });
    }
    let entries: Vec<String> = raw.split(',').map(|e| e.trim().to_owned()).collect();
    if let Some(bad) = entries.iter().find(|e| !is_host_port(e)) {
        return Err(RouteError::BadMetaAddr { entry: bad.clone() });
    }
    if entries.len() < 2 {
        return Err(RouteError::TooFewMetaAddrs {
            count: entries.len(),
            raw: raw.to_owned(),
        });
    }
    Ok(entries)
}

fn is_host_port(entry: &str) -> bool {
    match entry.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, metas: &[&str]) -> Route {
        Route {
            cluster_name: name.into(),
            meta_addrs: metas.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    #[test]
    fn to_json_writes_the_exact_meta_proxy_shape() {
        let r = route("c3srv-b", &["10.0.1.1:34601", "10.0.1.2:34601"]);
        assert_eq!(
            r.to_json(),
            r#"{"cluster_name":"c3srv-b","meta_addrs":"10.0.1.1:34601,10.0.1.2:34601"}"#
        );
    }

    #[test]
    fn to_json_escapes_and_round_trips() {
        let r = route("we\"ird\\name", &["a:1", "b:2", "c:3"]);
        assert_eq!(Route::parse(r.to_json().as_bytes()).unwrap(), r);
    }

    #[test]
    fn parse_reads_the_upstream_test_example_with_spaces() {
        let data = br#"{"cluster_name": "onebox", "meta_addrs": "127.0.0.1:34601,127.0.0.1:34602,127.0.0.1:34603"}"#;
        let r = Route::parse(data).unwrap();
        assert_eq!(
            r,
            route(
                "onebox",
                &["127.0.0.1:34601", "127.0.0.1:34602", "127.0.0.1:34603"]
            )
        );
    }

    #[test]
    fn parse_ignores_unknown_fields() {
        let data = br#"{"cluster_name":"a","meta_addrs":"h:1,h:2","owner":"ops"}"#;
        assert_eq!(Route::parse(data).unwrap(), route("a", &["h:1", "h:2"]));
    }

    #[test]
    fn parse_rejects_bad_json() {
        let err = Route::parse(b"{\"cluster_name\":").unwrap_err();
        assert!(matches!(err, RouteError::Json(_)), "{err}");
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }

    #[test]
    fn parse_rejects_non_objects() {
        let err = Route::parse(b"[1,2]").unwrap_err();
        assert!(
            matches!(err, RouteError::NotObject { found: "an array" }),
            "{err}"
        );
    }

    #[test]
    fn parse_rejects_missing_fields_by_name() {
        let err = Route::parse(br#"{"meta_addrs":"h:1,h:2"}"#).unwrap_err();
        assert!(
            matches!(
                err,
                RouteError::MissingField {
                    field: "cluster_name"
                }
            ),
            "{err}"
        );
        let err = Route::parse(br#"{"cluster_name":"a"}"#).unwrap_err();
        assert!(
            matches!(
                err,
                RouteError::MissingField {
                    field: "meta_addrs"
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("`meta_addrs`"), "{err}");
    }

    #[test]
    fn parse_rejects_the_rfc_shape() {
        let err = Route::parse(br#"{"cluster":"a","meta-addrs":["h:1","h:2"]}"#).unwrap_err();
        assert!(
            matches!(
                err,
                RouteError::MissingField {
                    field: "cluster_name"
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn parse_rejects_an_array_of_addresses() {
        let err = Route::parse(br#"{"cluster_name":"a","meta_addrs":["h:1","h:2"]}"#).unwrap_err();
        assert!(
            matches!(
                err,
                RouteError::NotString {
                    field: "meta_addrs",
                    found: "an array"
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn parse_rejects_an_empty_cluster_name() {
        let err = Route::parse(br#"{"cluster_name":"","meta_addrs":"h:1,h:2"}"#).unwrap_err();
        assert!(matches!(err, RouteError::EmptyClusterName), "{err}");
    }

    #[test]
    fn parse_rejects_fewer_than_two_meta_addrs() {
        let err = Route::parse(br#"{"cluster_name":"a","meta_addrs":"h:1"}"#).unwrap_err();
        assert!(
            matches!(err, RouteError::TooFewMetaAddrs { count: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("ERR_INVALID_DATA"), "{err}");
        let err = Route::parse(br#"{"cluster_name":"a","meta_addrs":""}"#).unwrap_err();
        assert!(
            matches!(err, RouteError::TooFewMetaAddrs { count: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn parse_rejects_empty_and_portless_meta_addrs() {
        for (raw, bad) in [
            ("h:1,", ""),
            ("h:1,,h:2", ""),
            ("h:1,h2", "h2"),
            ("h:1,:2", ":2"),
        ] {
            let data = format!(r#"{{"cluster_name":"a","meta_addrs":"{raw}"}}"#);
            let err = Route::parse(data.as_bytes()).unwrap_err();
            assert!(
                matches!(&err, RouteError::BadMetaAddr { entry } if entry == bad),
                "{raw:?}: {err}"
            );
        }
    }

    #[test]
    fn node_path_joins_root_and_table() {
        assert_eq!(
            node_path("/pegasus/metaproxy", "orders"),
            "/pegasus/metaproxy/orders"
        );
        assert_eq!(
            node_path("/pegasus/metaproxy/", "orders"),
            "/pegasus/metaproxy/orders"
        );
        assert_eq!(node_path("/", "orders"), "/orders");
    }
}
