//! The query string of a list request, checked strictly: a client that misspells a parameter or
//! sends one twice learns so from a 400, instead of silently getting a page it did not ask for.

use crate::rest::ApiError;

/// Items per page when the request gives no `limit` (seed 001).
pub const DEFAULT_PAGE_LIMIT: usize = 25;
/// The largest `limit` (seed 001).
pub const MAX_PAGE_LIMIT: usize = 100;
/// Bytes of a list request's query string: two parameters, the cursor the longer one.
pub const MAX_QUERY_STRING_BYTES: usize = 8 * 1024;

pub const LIMIT: &str = "limit";
pub const CURSOR: &str = "cursor";
/// The path parameter of a single record.
pub const ID: &str = "id";
/// The `param` of errors about the query string as a whole.
pub const QUERY: &str = "query";

/// `limit` and `cursor` of a list request.
#[derive(Debug, PartialEq, Eq)]
pub struct ListParams {
    pub limit: usize,
    pub cursor: Option<String>,
}

impl ListParams {
    pub fn parse(query: Option<&str>) -> Result<ListParams, ApiError> {
        let query = query.unwrap_or("");
        if query.len() > MAX_QUERY_STRING_BYTES {
            return Err(ApiError::validation(
                QUERY,
                format!(
                    "The query string is {} bytes long, more than {MAX_QUERY_STRING_BYTES} (MAX_QUERY_STRING_BYTES): \
                     pass `cursor` exactly as a response gave it",
                    query.len()
                ),
            ));
        }
        let mut limit = None;
        let mut cursor = None;
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let (slot, param) = match name.as_ref() {
                LIMIT => (&mut limit, LIMIT),
                CURSOR => (&mut cursor, CURSOR),
                other => {
                    let shown: String = other.chars().take(64).collect();
                    return Err(ApiError::validation(
                        QUERY,
                        format!("Unknown query parameter `{shown}`: list endpoints take `limit` and `cursor`"),
                    ));
                }
            };
            if slot.is_some() {
                return Err(ApiError::validation(param, format!("`{param}` is given more than once")));
            }
            *slot = Some(value.into_owned());
        }
        let limit = match limit {
            None => DEFAULT_PAGE_LIMIT,
            Some(text) => parse_limit(&text)?,
        };
        if cursor.as_deref() == Some("") {
            return Err(ApiError::validation(
                CURSOR,
                "`cursor` is empty: omit it for the first page, else pass `nextCursor` unchanged",
            ));
        }
        Ok(ListParams { limit, cursor })
    }
}

/// A single-record request takes no query string: a client that passes one is told so.
pub fn check_no_query(query: Option<&str>) -> Result<(), ApiError> {
    match query {
        None | Some("") => Ok(()),
        Some(_) => Err(ApiError::validation(QUERY, "A single record takes no query parameters: `GET <list>/<id>`")),
    }
}

fn parse_limit(text: &str) -> Result<usize, ApiError> {
    let out_of_range = || {
        let shown: String = text.chars().take(32).collect();
        ApiError::validation(LIMIT, format!("`limit` must be a whole number from 1 to {MAX_PAGE_LIMIT}, got `{shown}`"))
    };
    // Digits only: no sign, no decimal point, no spaces, no exponent.
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(out_of_range());
    }
    match text.parse::<usize>() {
        Ok(limit) if (1..=MAX_PAGE_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(out_of_range()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::ErrorCode;

    fn rejected(query: &str) -> (ErrorCode, Option<&'static str>) {
        let error = ListParams::parse(Some(query)).expect_err(query);
        (error.code, error.param)
    }

    #[test]
    fn limits_from_1_to_100_are_taken_and_25_is_the_default() {
        assert_eq!(ListParams::parse(None).unwrap(), ListParams { limit: DEFAULT_PAGE_LIMIT, cursor: None });
        assert_eq!(ListParams::parse(Some("")).unwrap().limit, DEFAULT_PAGE_LIMIT);
        for limit in 1..=MAX_PAGE_LIMIT {
            assert_eq!(ListParams::parse(Some(&format!("limit={limit}"))).unwrap().limit, limit);
        }
        let parsed = ListParams::parse(Some("cursor=abc_-&limit=7")).unwrap();
        assert_eq!(parsed, ListParams { limit: 7, cursor: Some("abc_-".to_owned()) });
    }

    #[test]
    fn every_other_limit_is_a_validation_error_naming_it() {
        let huge = format!("limit={}", "9".repeat(40));
        for query in
            ["limit=0", "limit=101", "limit=-1", "limit=2.5", "limit=abc", "limit=", "limit", "limit=1&limit=2"]
                .into_iter()
                .chain(["limit=+5", "limit=%205", "limit=1e2", huge.as_str()])
        {
            assert_eq!(rejected(query), (ErrorCode::Validation, Some(LIMIT)), "{query}");
        }
    }

    #[test]
    fn empty_repeated_or_unknown_parameters_are_rejected() {
        assert_eq!(rejected("cursor="), (ErrorCode::Validation, Some(CURSOR)));
        assert_eq!(rejected("cursor=a&cursor=b"), (ErrorCode::Validation, Some(CURSOR)));
        assert_eq!(rejected("limit=5&offset=3"), (ErrorCode::Validation, Some(QUERY)));
        let long = format!("cursor={}", "a".repeat(MAX_QUERY_STRING_BYTES));
        assert_eq!(rejected(&long), (ErrorCode::Validation, Some(QUERY)));
    }
}
