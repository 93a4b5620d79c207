//! Positions in a query's results and the cursors that carry them to clients.
//!
//! A position is a cut of the index's key space: every key sorts either below or above it. Cuts, not
//! keys, because a page's ends must stay put while the documents around them come and go: a cut after a
//! deleted document still separates the same neighbours.
//!
//! A cursor is `base64url(version ‖ position ‖ mac)`, where `mac` is HMAC-SHA256, keyed by the
//! deployment's secret, over the query's fingerprint and the rest of the cursor. So a client can neither
//! forge a position nor use one cursor with another query: both fail the MAC, with `InvalidCursor`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use livebase_store::{KeyRange, Order, successor};
use sha2::{Digest, Sha256};

use crate::limits::MAX_CURSOR_LEN;
use crate::query::{Operator, Query};
use crate::{Plan, QueryError};

const CURSOR_VERSION: u8 = 1;
const MAC_LEN: usize = 32;
const TAG_BELOW: u8 = 0;
const TAG_ABOVE_ALL: u8 = 1;

/// A cut of an index's key space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Position {
    /// Keys below these bytes are below the cut; `Below([])` is below every key.
    Below(Vec<u8>),
    /// Above every key.
    AboveAll,
}

impl Position {
    /// Where a query in `order` starts.
    pub(crate) fn start(order: Order) -> Position {
        match order {
            Order::Asc => Position::Below(Vec::new()),
            Order::Desc => Position::AboveAll,
        }
    }

    /// Where a query in `order` ends.
    pub(crate) fn end(order: Order) -> Position {
        Position::start(reverse(order))
    }

    /// Just past `key` for a scan in `order`.
    pub(crate) fn after(key: &[u8], order: Order) -> Position {
        match order {
            Order::Asc => Position::Below(successor(key.to_vec())),
            Order::Desc => Position::Below(key.to_vec()),
        }
    }

    /// The part of `range` between two cuts, in either order.
    pub(crate) fn between(range: &KeyRange, a: &Position, b: &Position) -> KeyRange {
        let (low, high) = if a.is_above(b) { (b, a) } else { (a, b) };
        let empty = KeyRange { start: Vec::new(), end: Some(Vec::new()) };
        let Position::Below(low) = low else { return empty };
        let start = range.start.clone().max(low.clone());
        let end = match (high, &range.end) {
            (Position::AboveAll, end) => end.clone(),
            (Position::Below(high), None) => Some(high.clone()),
            (Position::Below(high), Some(end)) => Some(high.min(end).clone()),
        };
        KeyRange { start, end }
    }

    fn is_above(&self, other: &Position) -> bool {
        match (self, other) {
            (Position::AboveAll, Position::AboveAll) => false,
            (Position::AboveAll, Position::Below(_)) => true,
            (Position::Below(_), Position::AboveAll) => false,
            (Position::Below(a), Position::Below(b)) => a > b,
        }
    }
}

pub(crate) fn reverse(order: Order) -> Order {
    match order {
        Order::Asc => Order::Desc,
        Order::Desc => Order::Asc,
    }
}

/// What a cursor is bound to: a hash of everything that decides a query's results and their order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// Hashes the table, the index and its fields, the planned key range, the order and the operators.
    /// The range is hashed as planned, so two spellings of one range share cursors; the fields are
    /// hashed so that redefining the index invalidates them.
    pub(crate) fn new(query: &Query, plan: &Plan) -> Fingerprint {
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        };
        field(b"livebase query fingerprint v1");
        field(query.source.table().as_bytes());
        field(query.source.index().as_bytes());
        for path in &plan.fields {
            field(path.to_string().as_bytes());
        }
        field(&plan.range.start);
        field(plan.range.end.as_deref().unwrap_or(b"(none)"));
        field(&[plan.range.end.is_some() as u8, query.source.order() as u8]);
        for operator in &query.operators {
            match operator {
                Operator::Filter(expression) => {
                    field(crate::json::expression_to_json(expression).to_string().as_bytes())
                }
                Operator::Limit(n) => field(format!("limit {n}").as_bytes()),
            }
        }
        Fingerprint(hasher.finalize().into())
    }
}

/// The deployment's key for authenticating cursors (`Store::secret`).
#[derive(Clone)]
pub struct CursorKey {
    mac: Hmac<Sha256>,
}

impl CursorKey {
    pub fn new(secret: &[u8; 32]) -> CursorKey {
        CursorKey { mac: Hmac::new_from_slice(secret).expect("HMAC takes keys of any length") }
    }

    fn mac(&self, fingerprint: &Fingerprint, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(&fingerprint.0);
        mac.update(payload);
        mac
    }

    pub(crate) fn encode(&self, fingerprint: &Fingerprint, position: &Position) -> String {
        let mut bytes = vec![CURSOR_VERSION];
        match position {
            Position::Below(key) => {
                bytes.push(TAG_BELOW);
                bytes.extend_from_slice(key);
            }
            Position::AboveAll => bytes.push(TAG_ABOVE_ALL),
        }
        let mac = self.mac(fingerprint, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub(crate) fn decode(&self, fingerprint: &Fingerprint, cursor: &str) -> Result<Position, QueryError> {
        let invalid = |problem: &str| Err(QueryError::InvalidCursor(problem.to_owned()));
        if cursor.len() > MAX_CURSOR_LEN {
            return invalid(&format!("the cursor is {} characters long, more than {MAX_CURSOR_LEN}", cursor.len()));
        }
        // Strict base64: no padding, no stray bits, so every cursor has exactly one spelling.
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(cursor) else {
            return invalid("the cursor is not a cursor this deployment handed out (not base64url)");
        };
        let Some(mac_start) = bytes.len().checked_sub(MAC_LEN).filter(|start| *start >= 2) else {
            return invalid("the cursor is not a cursor this deployment handed out (too short)");
        };
        let (payload, mac) = bytes.split_at(mac_start);
        if self.mac(fingerprint, payload).verify_slice(mac).is_err() {
            return invalid(
                "the cursor is from a different query (table, index, range, filters or order), or was altered",
            );
        }
        // Authentic from here on: a cursor this deployment made for this query, maybe by another version.
        match (payload[0], payload[1], &payload[2..]) {
            (CURSOR_VERSION, TAG_BELOW, key) => Ok(Position::Below(key.to_vec())),
            (CURSOR_VERSION, TAG_ABOVE_ALL, []) => Ok(Position::AboveAll),
            _ => invalid("the cursor was made by another version of Livebase"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn between_intersects_with_the_range_in_either_order() {
        let range = KeyRange { start: vec![2], end: Some(vec![8]) };
        let below = |key: &[u8]| Position::Below(key.to_vec());
        assert_eq!(
            Position::between(&range, &below(&[1]), &below(&[5])),
            KeyRange { start: vec![2], end: Some(vec![5]) }
        );
        assert_eq!(
            Position::between(&range, &below(&[5]), &below(&[3])),
            KeyRange { start: vec![3], end: Some(vec![5]) }
        );
        assert_eq!(Position::between(&range, &Position::AboveAll, &below(&[])), range);
        assert_eq!(
            Position::between(&KeyRange::all(), &Position::AboveAll, &below(&[4])),
            KeyRange { start: vec![4], end: None }
        );
        assert!(Position::between(&range, &Position::AboveAll, &Position::AboveAll).is_empty());
        assert!(Position::between(&range, &below(&[9]), &below(&[9, 1])).is_empty());
    }

    #[test]
    fn positions_after_a_key_separate_it_from_its_successors() {
        let key = [4u8, 7];
        for order in [Order::Asc, Order::Desc] {
            let after = Position::after(&key, order);
            let scanned = Position::between(&KeyRange::all(), &Position::start(order), &after);
            let rest = Position::between(&KeyRange::all(), &after, &Position::end(order));
            assert!(scanned.contains(&key) && !rest.contains(&key), "{order:?}");
            let next = if order == Order::Asc { [4u8, 7, 0] } else { [4u8, 6, 0xFF] };
            assert!(rest.contains(&next) && !scanned.contains(&next), "{order:?}");
        }
    }
}
