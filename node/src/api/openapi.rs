//! The OpenAPI document of `/api/v1`, served at `/api/v1/openapi.json`.
//!
//! Written by hand (the API is small and its prose matters); the tests below keep it honest in
//! both directions: every route the router has is documented, and every documented route is
//! served.

use axum::http::header;
use axum::response::IntoResponse;

pub const DOCUMENT: &str = include_str!("openapi.json");

pub(super) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(path, methods)` of every route registered in `api/mod.rs`, read from its source.
    fn routes_in_router() -> Vec<(String, Vec<String>)> {
        let src = [include_str!("mod.rs"), include_str!("console.rs")].concat();
        src.split(".route(")
            .skip(1)
            .filter_map(|rest| {
                let rest = rest.trim_start().strip_prefix('"')?;
                let (path, after) = rest.split_once('"')?;
                let call = after.split(".route(").next().unwrap_or(after);
                let methods = ["get", "post", "put", "delete"]
                    .iter()
                    .filter(|m| call.contains(&format!("{m}(")) || call.contains(&format!(".{m}(")))
                    .map(|m| m.to_string())
                    .collect();
                Some((path.to_owned(), methods))
            })
            // Outside the API prefix: health check and the web app's files.
            .filter(|(p, _)| p != "/healthz" && p != "/" && !p.starts_with("/assets/"))
            .collect()
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        let routes = routes_in_router();
        assert!(routes.len() >= 18, "found {routes:?}");
        for (path, methods) in &routes {
            let entry = paths
                .get(path)
                .unwrap_or_else(|| panic!("{path} is served but not documented"));
            for m in methods {
                assert!(
                    entry.get(m).is_some(),
                    "{m} {path} is served but not documented"
                );
            }
        }
        for (path, entry) in paths {
            let served = routes.iter().find(|(p, _)| p == path);
            let (_, methods) =
                served.unwrap_or_else(|| panic!("{path} is documented but not served"));
            for m in entry.as_object().unwrap().keys() {
                assert!(
                    methods.contains(m),
                    "{m} {path} is documented but not served"
                );
            }
        }
        // Every schema reference resolves.
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for r in DOCUMENT.split("\"$ref\": \"#/components/schemas/").skip(1) {
            let name = r.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
    }
}
