//! `limit` and `offset` query parameters, validated the same way on every
//! list (contract §2.3, §2.12, §7): an honest effective limit, and a 400
//! for a bad value instead of a silent default.

use std::collections::HashMap;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use utoipa::IntoParams;

use super::ApiError;

/// The query parameters as a map (unknown ones are for the caller to
/// ignore); an unreadable query string is a 400.
pub fn query_map(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    query
        .map(|Query(query)| query)
        .map_err(|error| ApiError::BadRequest(format!("Invalid query: {}", error.body_text())))
}

/// `limit` and `offset`, for the OpenAPI document: the rules of
/// [`Page::from_query`].
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// Page size: a whole number from 1; past the list's maximum it means
    /// the maximum.
    #[param(schema_with = crate::fields::page_limit)]
    limit: Option<u32>,
    /// Rows to skip, from 0.
    #[param(schema_with = crate::fields::page_offset)]
    offset: Option<u64>,
}

/// `limit` alone, for lists without an offset: the rule of
/// [`Page::limit_from_query`].
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LimitParam {
    /// Page size: a whole number from 1; past the list's maximum it means
    /// the maximum.
    #[param(schema_with = crate::fields::page_limit)]
    limit: Option<u32>,
}

/// A validated page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Effective page size: the asked one capped at the list's maximum.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

impl Page {
    /// Reads `limit` (default `default`, an integer >= 1, capped at `max`)
    /// and `offset` (default 0, an integer >= 0) from `query`.
    pub fn from_query(
        query: &HashMap<String, String>,
        default: u32,
        max: u32,
    ) -> Result<Page, ApiError> {
        let limit = Page::limit_from_query(query, default, max)?;
        let offset = match query.get("offset") {
            None => 0,
            Some(text) => text.parse::<u64>().map_err(|_| {
                ApiError::BadRequest("offset must be a non-negative integer".into())
            })?,
        };
        Ok(Page { limit, offset })
    }

    /// Reads only `limit` (default `default`, an integer >= 1, capped at
    /// `max`), for lists without paging by offset.
    pub fn limit_from_query(
        query: &HashMap<String, String>,
        default: u32,
        max: u32,
    ) -> Result<u32, ApiError> {
        match query.get("limit").map(|text| positive(text)) {
            None => Ok(default),
            Some(Some(limit)) => Ok(u32::try_from(limit.min(u64::from(max))).unwrap_or(max)),
            Some(None) => Err(ApiError::BadRequest(
                "limit must be a positive integer".into(),
            )),
        }
    }

    /// Whether rows remain after the `returned` ones of `total`.
    pub fn has_more(&self, returned: usize, total: u64) -> bool {
        self.offset
            .saturating_add(u64::try_from(returned).unwrap_or(u64::MAX))
            < total
    }
}

/// A decimal integer >= 1; one too large for `u64` saturates, since any
/// limit past the cap means the cap.
fn positive(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value = text.parse::<u64>().unwrap_or(u64::MAX);
    (value >= 1).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(pairs: &[(&str, &str)]) -> Result<Page, String> {
        let query = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Page::from_query(&query, 20, 100).map_err(|error| error.to_string())
    }

    #[test]
    fn limits_default_cap_and_refuse_bad_values() {
        let ok = |limit, offset| Ok(Page { limit, offset });
        assert_eq!(page(&[]), ok(20, 0));
        assert_eq!(page(&[("limit", "1"), ("offset", "7")]), ok(1, 7));
        assert_eq!(page(&[("limit", "500")]), ok(100, 0));
        assert_eq!(page(&[("limit", "99999999999999999999")]), ok(100, 0));
        for bad in ["0", "000", "-1", "+5", "abc", "", "1.5"] {
            assert_eq!(
                page(&[("limit", bad)]),
                Err("limit must be a positive integer".into()),
                "{bad}"
            );
        }
        for bad in ["-1", "x", ""] {
            assert_eq!(
                page(&[("offset", bad)]),
                Err("offset must be a non-negative integer".into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn has_more_counts_what_follows_the_page() {
        let page = Page {
            limit: 2,
            offset: 2,
        };
        assert!(page.has_more(2, 5));
        assert!(!page.has_more(2, 4));
        assert!(!page.has_more(0, 0));
    }
}
