//! Proptest strategies shared by the modules' tests.
//!
//! Leaves are drawn partly from tiny domains, so that two independently generated values are
//! often equal or share a prefix: that is where order and encoding bugs hide.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

use crate::value::{Object, Value};

fn int64() -> impl Strategy<Value = i64> {
    prop_oneof![-2i64..=2, Just(i64::MIN), Just(i64::MIN + 1), Just(i64::MAX), Just(i64::MAX - 1), any::<i64>(),]
}

fn float64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(1.0),
        Just(-1.0),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::NAN),
        Just(-f64::NAN),
        Just(f64::MIN_POSITIVE),
        Just(-f64::MIN_POSITIVE),
        Just(f64::MAX),
        Just(f64::MIN),
        any::<f64>(),
        // Every bit pattern, including signalling NaNs and NaN payloads.
        any::<u64>().prop_map(f64::from_bits),
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof!["[ab\0\u{7f}é\u{FFFD}\u{10000}]{0,4}", any::<String>(),]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(prop_oneof![Just(0u8), Just(1u8), Just(0xFFu8)], 0..4), vec(any::<u8>(), 0..8),]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        int64().prop_map(Value::Int64),
        float64().prop_map(Value::Float64),
        any::<bool>().prop_map(Value::Boolean),
        string().prop_map(Value::String),
        bytes().prop_map(Value::Bytes),
    ]
}

/// Any value with any field names (including empty and non-ASCII ones), nested a few levels.
pub(crate) fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(string(), inner, 0..4).prop_map(Value::Object),
        ]
    })
}

/// A value, or undefined (`None`).
pub(crate) fn key_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![1 => Just(None), 9 => value().prop_map(Some)]
}

pub(crate) fn object() -> impl Strategy<Value = Object> {
    btree_map(string(), value(), 0..5)
}

/// Field names the JSON formats accept: printable ASCII without a leading `$`.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof!["[ab_]{1,2}", "[ -#%-~][ -~]{0,6}"]
}

/// Any value whose field names the JSON formats accept.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(field_name(), inner, 0..4).prop_map(Value::Object),
        ]
    })
}

/// Values that survive the plain JSON format unchanged: no int64, no bytes, no NaN or
/// infinities (which it writes as strings).
pub(crate) fn plain_json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        float64().prop_filter("finite", |n| n.is_finite()).prop_map(Value::Float64),
        any::<bool>().prop_map(Value::Boolean),
        string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(field_name(), inner, 0..4).prop_map(Value::Object),
        ]
    })
}

/// Byte strings made mostly of tags, markers, terminators and escapes, so that many of them
/// are valid encodings or nearly so.
pub(crate) fn any_bytes_like_encodings() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(prop_oneof![0u8..=0x0A, Just(0xFFu8), Just(b'a')], 0..24), vec(any::<u8>(), 0..24),]
}
