//! An order-preserving ("memcomparable") byte encoding of values, used for index keys and,
//! for whole documents, as the storage format.
//!
//! Comparing two encodings with `<[u8]>::cmp` gives the same answer as comparing the values
//! with `Option::<&Value>::cmp` (so undefined, `None`, sorts first). The encoding is also
//! prefix-free: no encoding is a proper prefix of another. Two distinct encodings therefore
//! differ at a byte inside both, so anything appended after them cannot change their order.
//! That is what makes a concatenation of encodings (a tuple key) compare element by element,
//! and what lets a caller append further bytes, such as a document id, to a key.
//!
//! Layout, tag byte first:
//!
//! | value      | bytes                                                          |
//! |------------|----------------------------------------------------------------|
//! | undefined  | `01`                                                           |
//! | null       | `02`                                                           |
//! | int64      | `03`, 8 bytes big-endian with the sign bit flipped             |
//! | float64    | `04`, 8 bytes big-endian: negative numbers with every bit inverted, others with the sign bit flipped |
//! | boolean    | `05`, then `00` (false) or `01` (true)                         |
//! | string     | `06`, escaped UTF-8                                            |
//! | bytes      | `07`, escaped bytes                                            |
//! | array      | `08`, each element, then `00`                                  |
//! | object     | `09`, for each field in name order: `01`, escaped name, value; then `00` |
//!
//! Escaping writes `00` as `00 FF` and ends with `00 00`. A shorter string that is a prefix of
//! a longer one ends with `00 00` where the longer one continues with a byte above `00`, or
//! with `00 FF` for a zero byte; either way the shorter sorts first, as it should.
//!
//! Array elements and object fields never start with `00` (tags are at least `02`, and every
//! field starts with the `01` marker), so the closing `00` sorts a prefix first. The marker is
//! needed because an escaped field name may itself start with `00` (an empty name does).

use std::collections::btree_map::Entry;

use crate::limits::MAX_KEY_NESTING;
use crate::value::{Object, Value};

const TERMINATOR: u8 = 0x00;
const ESCAPE: u8 = 0xFF;
const FIELD_MARKER: u8 = 0x01;

const TAG_UNDEFINED: u8 = 0x01;
const TAG_NULL: u8 = 0x02;
const TAG_INT64: u8 = 0x03;
const TAG_FLOAT64: u8 = 0x04;
const TAG_BOOLEAN: u8 = 0x05;
const TAG_STRING: u8 = 0x06;
const TAG_BYTES: u8 = 0x07;
const TAG_ARRAY: u8 = 0x08;
const TAG_OBJECT: u8 = 0x09;

const SIGN_BIT: u64 = 1 << 63;

pub(crate) const FLOAT64_ENCODED_LEN: usize = 1 + 8;
const INT64_ENCODED_LEN: usize = 1 + 8;
const BOOLEAN_ENCODED_LEN: usize = 1 + 1;
const NULL_ENCODED_LEN: usize = 1;
/// The two terminator bytes that end escaped content.
const ESCAPED_END_LEN: usize = 2;

/// Why bytes are not exactly an encoding produced by this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyDecodeError {
    #[error("Invalid key encoding: it ends at byte {offset}, in the middle of a value.")]
    UnexpectedEnd { offset: usize },
    #[error("Invalid key encoding: byte {offset} is {byte:#04x}, which is not a type tag.")]
    InvalidTag { offset: usize, byte: u8 },
    #[error(
        "Invalid key encoding: byte {offset} encodes undefined inside an array or object, where \
         only values may appear."
    )]
    UndefinedInContainer { offset: usize },
    #[error("Invalid key encoding: the boolean byte {offset} is {byte:#04x}, not 0x00 or 0x01.")]
    InvalidBoolean { offset: usize, byte: u8 },
    #[error(
        "Invalid key encoding: byte {offset} is {byte:#04x} after a 0x00, where only 0x00 (end \
         of string) or 0xff (escaped zero byte) may follow."
    )]
    InvalidEscape { offset: usize, byte: u8 },
    #[error("Invalid key encoding: the string starting at byte {offset} is not valid UTF-8.")]
    InvalidUtf8 { offset: usize },
    #[error(
        "Invalid key encoding: byte {offset} is {byte:#04x}, where an object needs a field \
         marker (0x01) or its end (0x00)."
    )]
    InvalidFieldMarker { offset: usize, byte: u8 },
    #[error(
        "Invalid key encoding: the field name starting at byte {offset} does not sort after the \
         previous field name, so the object's fields are duplicated or out of order."
    )]
    FieldsOutOfOrder { offset: usize },
    #[error(
        "Invalid key encoding: the container at byte {offset} nests more than {MAX_KEY_NESTING} \
         levels deep."
    )]
    TooNested { offset: usize },
    #[error("Invalid document encoding: it encodes {type_name}, not an object.")]
    NotAnObject { type_name: &'static str },
    #[error(
        "Invalid document encoding: the document ends at byte {offset}, but {trailing} more \
         bytes follow it."
    )]
    TrailingBytes { offset: usize, trailing: usize },
}

/// Appends the encoding of `value` (`None` for undefined) to `out`.
pub fn encode_key_value(out: &mut Vec<u8>, value: Option<&Value>) {
    match value {
        None => out.push(TAG_UNDEFINED),
        Some(value) => encode_value(out, value),
    }
}

/// Decodes one encoding from the start of `bytes`, returning the value (`None` for undefined)
/// and how many bytes it took. Anything after those bytes is ignored. Strict: it accepts
/// exactly what [`encode_key_value`] produces, so an accepted value re-encodes to the same
/// bytes. Containers may nest at most [`MAX_KEY_NESTING`] deep.
pub fn decode_key_value(bytes: &[u8]) -> Result<(Option<Value>, usize), KeyDecodeError> {
    let mut decoder = Decoder { bytes, position: 0 };
    let value = decoder.value(0)?;
    assert!(decoder.position <= bytes.len());
    Ok((value, decoder.position))
}

/// How many bytes the encoding at the start of `bytes` takes, found by skipping over it without
/// decoding it: `None` when `bytes` does not start with a whole encoding nesting at most
/// [`MAX_KEY_NESTING`] deep. It reads no byte past the encoding it measures, so every key that
/// starts with the same encoding gets the same length, whatever follows. Lenient where
/// [`decode_key_value`] is strict (UTF-8, boolean bytes, field order, undefined in containers are
/// not checked): it only finds where a value ends, and measures every encoding of
/// [`encode_key_value`] exactly.
pub fn encoded_key_value_len(bytes: &[u8]) -> Option<usize> {
    let mut position = 0;
    // The containers open around `position`, one bit each, innermost lowest: set for an object.
    let mut objects: u32 = 0;
    let mut depth = 0;
    const { assert!(MAX_KEY_NESTING <= u32::BITS as usize, "one bit per open container") };
    loop {
        // At the start of a value.
        let tag = *bytes.get(position)?;
        position += 1;
        match tag {
            TAG_UNDEFINED | TAG_NULL => {}
            TAG_INT64 | TAG_FLOAT64 => position += INT64_ENCODED_LEN - 1,
            TAG_BOOLEAN => position += BOOLEAN_ENCODED_LEN - 1,
            TAG_STRING | TAG_BYTES => position = escaped_end(bytes, position)?,
            TAG_ARRAY | TAG_OBJECT => {
                if depth == MAX_KEY_NESTING {
                    return None;
                }
                objects = objects << 1 | u32::from(tag == TAG_OBJECT);
                depth += 1;
            }
            _ => return None,
        }
        if position > bytes.len() {
            return None;
        }
        // After a value or a container's tag: close the containers that end here, then step to
        // the next value (past its field name, in an object).
        loop {
            if depth == 0 {
                return Some(position);
            }
            let next = *bytes.get(position)?;
            position += 1;
            if next == TERMINATOR {
                objects >>= 1;
                depth -= 1;
                continue;
            }
            if objects & 1 == 1 {
                if next != FIELD_MARKER {
                    return None;
                }
                position = escaped_end(bytes, position)?;
            } else {
                // An array's element: `next` is its tag.
                position -= 1;
            }
            break;
        }
    }
}

/// Where escaped content starting at `position` ends (after its two terminator bytes).
fn escaped_end(bytes: &[u8], mut position: usize) -> Option<usize> {
    loop {
        let zero = position + bytes.get(position..)?.iter().position(|&byte| byte == TERMINATOR)?;
        match *bytes.get(zero + 1)? {
            TERMINATOR => return Some(zero + 2),
            ESCAPE => position = zero + 2,
            _ => return None,
        }
    }
}

/// The storage encoding of a document: the key encoding of the object.
pub fn encode_document(object: &Object) -> Vec<u8> {
    let len = encoded_object_len(object);
    let mut out = Vec::with_capacity(len);
    encode_object(&mut out, object);
    assert_eq!(out.len(), len);
    out
}

/// Decodes a document stored with [`encode_document`]; `bytes` must hold exactly one object.
pub fn decode_document(bytes: &[u8]) -> Result<Object, KeyDecodeError> {
    let (value, consumed) = decode_key_value(bytes)?;
    if consumed != bytes.len() {
        return Err(KeyDecodeError::TrailingBytes { offset: consumed, trailing: bytes.len() - consumed });
    }
    match value {
        Some(Value::Object(object)) => Ok(object),
        Some(other) => Err(KeyDecodeError::NotAnObject { type_name: other.type_name() }),
        None => Err(KeyDecodeError::NotAnObject { type_name: "undefined" }),
    }
}

/// The encoded length of a string of `len` bytes containing no zero byte.
pub(crate) const fn string_encoded_len(len: usize) -> usize {
    1 + len + ESCAPED_END_LEN
}

/// The encoded length of one object field whose name has `name_len` bytes, none of them zero,
/// and whose value encodes to `value_len` bytes.
pub(crate) const fn field_encoded_len(name_len: usize, value_len: usize) -> usize {
    1 + name_len + ESCAPED_END_LEN + value_len
}

pub(crate) fn encoded_object_len(object: &Object) -> usize {
    let fields: usize =
        object.iter().map(|(name, value)| 1 + escaped_len(name.as_bytes()) + encoded_value_len(value)).sum();
    1 + fields + 1
}

fn encoded_value_len(value: &Value) -> usize {
    match value {
        Value::Null => NULL_ENCODED_LEN,
        Value::Int64(_) => INT64_ENCODED_LEN,
        Value::Float64(_) => FLOAT64_ENCODED_LEN,
        Value::Boolean(_) => BOOLEAN_ENCODED_LEN,
        Value::String(s) => 1 + escaped_len(s.as_bytes()),
        Value::Bytes(b) => 1 + escaped_len(b),
        Value::Array(items) => 1 + items.iter().map(encoded_value_len).sum::<usize>() + 1,
        Value::Object(object) => encoded_object_len(object),
    }
}

fn escaped_len(bytes: &[u8]) -> usize {
    let zeros = bytes.iter().filter(|b| **b == 0).count();
    bytes.len() + zeros + ESCAPED_END_LEN
}

fn encode_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(TAG_NULL),
        Value::Int64(n) => {
            out.push(TAG_INT64);
            out.extend_from_slice(&((*n as u64) ^ SIGN_BIT).to_be_bytes());
        }
        Value::Float64(n) => {
            out.push(TAG_FLOAT64);
            out.extend_from_slice(&float_to_key(*n).to_be_bytes());
        }
        Value::Boolean(b) => {
            out.push(TAG_BOOLEAN);
            out.push(u8::from(*b));
        }
        Value::String(s) => {
            out.push(TAG_STRING);
            encode_escaped(out, s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(TAG_BYTES);
            encode_escaped(out, b);
        }
        Value::Array(items) => {
            out.push(TAG_ARRAY);
            for item in items {
                encode_value(out, item);
            }
            out.push(TERMINATOR);
        }
        Value::Object(object) => encode_object(out, object),
    }
}

fn encode_object(out: &mut Vec<u8>, object: &Object) {
    out.push(TAG_OBJECT);
    for (name, value) in object {
        out.push(FIELD_MARKER);
        encode_escaped(out, name.as_bytes());
        encode_value(out, value);
    }
    out.push(TERMINATOR);
}

fn encode_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &byte in bytes {
        out.push(byte);
        if byte == TERMINATOR {
            out.push(ESCAPE);
        }
    }
    out.extend_from_slice(&[TERMINATOR, TERMINATOR]);
}

/// Maps floats to integers whose unsigned order is [`f64::total_cmp`]'s order: negative
/// numbers (sign bit set) are inverted so larger magnitudes sort lower, and non-negative
/// numbers get the sign bit set so they sort above all negative ones.
fn float_to_key(n: f64) -> u64 {
    let bits = n.to_bits();
    if bits & SIGN_BIT != 0 { !bits } else { bits ^ SIGN_BIT }
}

fn float_from_key(key: u64) -> f64 {
    f64::from_bits(if key & SIGN_BIT != 0 { key ^ SIGN_BIT } else { !key })
}

struct Decoder<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Decoder<'_> {
    /// Decodes a value that sits inside `nesting` containers.
    fn value(&mut self, nesting: usize) -> Result<Option<Value>, KeyDecodeError> {
        let tag_offset = self.position;
        let value = match self.byte()? {
            TAG_UNDEFINED => return Ok(None),
            TAG_NULL => Value::Null,
            TAG_INT64 => Value::Int64((u64::from_be_bytes(self.eight_bytes()?) ^ SIGN_BIT) as i64),
            TAG_FLOAT64 => Value::Float64(float_from_key(u64::from_be_bytes(self.eight_bytes()?))),
            TAG_BOOLEAN => {
                let offset = self.position;
                match self.byte()? {
                    0 => Value::Boolean(false),
                    1 => Value::Boolean(true),
                    byte => return Err(KeyDecodeError::InvalidBoolean { offset, byte }),
                }
            }
            TAG_STRING => Value::String(self.string()?),
            TAG_BYTES => Value::Bytes(self.escaped()?),
            TAG_ARRAY => {
                // Checked before descending, so recursion depth stays bounded on any input.
                if nesting + 1 > MAX_KEY_NESTING {
                    return Err(KeyDecodeError::TooNested { offset: tag_offset });
                }
                let mut items = Vec::new();
                while self.peek()? != TERMINATOR {
                    items.push(self.element(nesting + 1)?);
                }
                self.position += 1;
                Value::Array(items)
            }
            TAG_OBJECT => {
                if nesting + 1 > MAX_KEY_NESTING {
                    return Err(KeyDecodeError::TooNested { offset: tag_offset });
                }
                Value::Object(self.object_fields(nesting + 1)?)
            }
            byte => {
                return Err(KeyDecodeError::InvalidTag { offset: tag_offset, byte });
            }
        };
        Ok(Some(value))
    }

    fn object_fields(&mut self, nesting: usize) -> Result<Object, KeyDecodeError> {
        let mut object = Object::new();
        loop {
            let marker_offset = self.position;
            match self.byte()? {
                TERMINATOR => return Ok(object),
                FIELD_MARKER => {
                    let name_offset = self.position;
                    let name = self.string()?;
                    // Names must strictly increase: that makes the encoding of an object
                    // unique, which re-encoding to the same bytes requires.
                    if let Some((last, _)) = object.last_key_value()
                        && name.as_str() <= last.as_str()
                    {
                        return Err(KeyDecodeError::FieldsOutOfOrder { offset: name_offset });
                    }
                    let value = self.element(nesting)?;
                    match object.entry(name) {
                        Entry::Vacant(entry) => entry.insert(value),
                        Entry::Occupied(_) => unreachable!("names strictly increase"),
                    };
                }
                byte => {
                    return Err(KeyDecodeError::InvalidFieldMarker { offset: marker_offset, byte });
                }
            }
        }
    }

    fn element(&mut self, nesting: usize) -> Result<Value, KeyDecodeError> {
        let offset = self.position;
        self.value(nesting)?.ok_or(KeyDecodeError::UndefinedInContainer { offset })
    }

    fn string(&mut self) -> Result<String, KeyDecodeError> {
        let offset = self.position;
        String::from_utf8(self.escaped()?).map_err(|_| KeyDecodeError::InvalidUtf8 { offset })
    }

    fn escaped(&mut self) -> Result<Vec<u8>, KeyDecodeError> {
        let mut out = Vec::new();
        loop {
            let byte = self.byte()?;
            if byte != TERMINATOR {
                out.push(byte);
                continue;
            }
            let offset = self.position;
            match self.byte()? {
                TERMINATOR => return Ok(out),
                ESCAPE => out.push(0),
                byte => return Err(KeyDecodeError::InvalidEscape { offset, byte }),
            }
        }
    }

    fn peek(&self) -> Result<u8, KeyDecodeError> {
        self.bytes.get(self.position).copied().ok_or(KeyDecodeError::UnexpectedEnd { offset: self.position })
    }

    fn byte(&mut self) -> Result<u8, KeyDecodeError> {
        let byte = self.peek()?;
        self.position += 1;
        Ok(byte)
    }

    fn eight_bytes(&mut self) -> Result<[u8; 8], KeyDecodeError> {
        let end = self.position + 8;
        let bytes: [u8; 8] = self
            .bytes
            .get(self.position..end)
            .ok_or(KeyDecodeError::UnexpectedEnd { offset: self.bytes.len() })?
            .try_into()
            .expect("the slice has eight bytes");
        self.position = end;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};

    use proptest::prelude::*;

    use super::*;
    use crate::limits::document_size;
    use crate::strategies::{any_bytes_like_encodings, key_value, object, value};

    fn encode(value: Option<&Value>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key_value(&mut out, value);
        out
    }

    fn hash(value: &Value) -> u64 {
        let mut hasher = DefaultHasher::new();
        value.hash(&mut hasher);
        hasher.finish()
    }

    fn nested_arrays(levels: usize) -> Value {
        let mut value = Value::Null;
        for _ in 0..levels {
            value = Value::Array(vec![value]);
        }
        value
    }

    #[test]
    fn golden_encodings() {
        // The storage format: these bytes must never change.
        let cases: Vec<(Option<Value>, Vec<u8>)> = vec![
            (None, vec![0x01]),
            (Some(Value::Null), vec![0x02]),
            (Some(Value::Int64(1)), vec![0x03, 0x80, 0, 0, 0, 0, 0, 0, 1]),
            (Some(Value::Int64(-1)), vec![0x03, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
            (Some(Value::Float64(0.0)), vec![0x04, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            (Some(Value::Float64(-0.0)), vec![0x04, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
            (Some(Value::Float64(1.0)), vec![0x04, 0xBF, 0xF0, 0, 0, 0, 0, 0, 0]),
            (Some(Value::Boolean(true)), vec![0x05, 0x01]),
            (Some(Value::from("a\0")), vec![0x06, b'a', 0x00, 0xFF, 0x00, 0x00]),
            (Some(Value::Bytes(vec![])), vec![0x07, 0x00, 0x00]),
            (Some(Value::Array(vec![Value::Null])), vec![0x08, 0x02, 0x00]),
            (
                Some(Value::Object(Object::from([(String::new(), Value::Null)]))),
                vec![0x09, 0x01, 0x00, 0x00, 0x02, 0x00],
            ),
        ];
        for (value, bytes) in cases {
            assert_eq!(encode(value.as_ref()), bytes, "{value:?}");
            assert_eq!(decode_key_value(&bytes), Ok((value, bytes.len())));
            assert_eq!(encoded_key_value_len(&bytes), Some(bytes.len()));
        }
    }

    #[test]
    fn decoding_is_strict() {
        use KeyDecodeError::*;
        let cases: Vec<(Vec<u8>, KeyDecodeError)> = vec![
            (vec![], UnexpectedEnd { offset: 0 }),
            (vec![0x00], InvalidTag { offset: 0, byte: 0x00 }),
            (vec![0x0A], InvalidTag { offset: 0, byte: 0x0A }),
            (vec![0xFF], InvalidTag { offset: 0, byte: 0xFF }),
            (vec![0x03, 0, 0], UnexpectedEnd { offset: 3 }),
            (vec![0x05, 0x02], InvalidBoolean { offset: 1, byte: 0x02 }),
            (vec![0x06, b'a', 0x00], UnexpectedEnd { offset: 3 }),
            (vec![0x06, b'a', 0x00, 0x01], InvalidEscape { offset: 3, byte: 0x01 }),
            (vec![0x06, 0xC3, 0x00, 0x00], InvalidUtf8 { offset: 1 }),
            (vec![0x08, 0x01, 0x00], UndefinedInContainer { offset: 1 }),
            (vec![0x08, 0x02], UnexpectedEnd { offset: 2 }),
            (vec![0x09, 0x02, 0x00], InvalidFieldMarker { offset: 1, byte: 0x02 }),
            (vec![0x09, 0x01, b'a', 0, 0, 0x01, 0x00], UndefinedInContainer { offset: 5 }),
            (vec![0x09, 0x01, b'b', 0, 0, 0x02, 0x01, b'a', 0, 0, 0x02, 0x00], FieldsOutOfOrder { offset: 7 }),
            (vec![0x09, 0x01, b'a', 0, 0, 0x02, 0x01, b'a', 0, 0, 0x02, 0x00], FieldsOutOfOrder { offset: 7 }),
        ];
        for (bytes, error) in cases {
            assert_eq!(decode_key_value(&bytes), Err(error), "{bytes:02x?}");
        }
    }

    #[test]
    fn decoding_bounds_nesting() {
        let at_limit = nested_arrays(MAX_KEY_NESTING);
        let bytes = encode(Some(&at_limit));
        assert_eq!(decode_key_value(&bytes), Ok((Some(at_limit), bytes.len())));

        let over_limit = encode(Some(&nested_arrays(MAX_KEY_NESTING + 1)));
        assert_eq!(decode_key_value(&over_limit), Err(KeyDecodeError::TooNested { offset: MAX_KEY_NESTING }));
        // Far deeper than any stack allows, were the decoder to recurse without a bound.
        let hostile = vec![0x08; 1_000_000];
        assert_eq!(decode_key_value(&hostile), Err(KeyDecodeError::TooNested { offset: MAX_KEY_NESTING }));
        assert_eq!(encoded_key_value_len(&bytes), Some(bytes.len()));
        assert_eq!(encoded_key_value_len(&over_limit), None);
        assert_eq!(encoded_key_value_len(&hostile), None);
    }

    #[test]
    fn documents_must_be_exactly_one_object() {
        let document = Object::from([("a".to_owned(), Value::Int64(7))]);
        let bytes = encode_document(&document);
        assert_eq!(decode_document(&bytes), Ok(document));

        let mut trailing = bytes.clone();
        trailing.push(0x02);
        assert_eq!(decode_document(&trailing), Err(KeyDecodeError::TrailingBytes { offset: bytes.len(), trailing: 1 }));
        assert_eq!(decode_document(&[0x02]), Err(KeyDecodeError::NotAnObject { type_name: "null" }));
        assert_eq!(decode_document(&[0x01]), Err(KeyDecodeError::NotAnObject { type_name: "undefined" }));
        assert_eq!(
            KeyDecodeError::TrailingBytes { offset: 3, trailing: 1 }.to_string(),
            "Invalid document encoding: the document ends at byte 3, but 1 more bytes follow it."
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        #[test]
        fn encoding_preserves_order(a in key_value(), b in key_value()) {
            let (ea, eb) = (encode(a.as_ref()), encode(b.as_ref()));
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            prop_assert_eq!(a == b, ea == eb);
        }

        #[test]
        fn ord_is_a_total_order(a in value(), b in value(), c in value()) {
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            prop_assert_eq!(a == b, a.cmp(&b).is_eq());
            prop_assert_eq!(a.partial_cmp(&b), Some(a.cmp(&b)));
            if a == b {
                prop_assert_eq!(hash(&a), hash(&b));
            }
            prop_assert_eq!(a.cmp(&a.clone()), std::cmp::Ordering::Equal);
            let mut sorted = [a, b, c];
            sorted.sort();
            prop_assert!(sorted[0] <= sorted[1] && sorted[1] <= sorted[2]);
            prop_assert!(sorted[0] <= sorted[2]);
        }
    }

    /// Bytes to append after an encoding, favouring the terminator and escape bytes.
    fn suffix() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop_oneof![Just(0x00u8), Just(0xFFu8), any::<u8>()], 0..4)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn tuples_compare_element_by_element(
            a in proptest::collection::vec(key_value(), 0..4),
            b in proptest::collection::vec(key_value(), 0..4),
        ) {
            let concat = |values: &[Option<Value>]| {
                let mut out = Vec::new();
                for value in values {
                    encode_key_value(&mut out, value.as_ref());
                }
                out
            };
            prop_assert_eq!(a.cmp(&b), concat(&a).cmp(&concat(&b)));
        }

        #[test]
        fn appended_bytes_do_not_change_order(
            a in key_value(),
            b in key_value(),
            suffix_a in suffix(),
            suffix_b in suffix(),
        ) {
            prop_assume!(a != b);
            let (mut ea, mut eb) = (encode(a.as_ref()), encode(b.as_ref()));
            ea.extend(suffix_a);
            eb.extend(suffix_b);
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
        }

        #[test]
        fn strings_sharing_prefixes_stay_ordered_under_any_suffix(
            a in "[a\0\u{1}]{0,3}",
            b in "[a\0\u{1}]{0,3}",
            suffix_a in suffix(),
            suffix_b in suffix(),
        ) {
            prop_assume!(a != b);
            let (a, b) = (Value::String(a), Value::String(b));
            let (mut ea, mut eb) = (encode(Some(&a)), encode(Some(&b)));
            ea.extend(suffix_a);
            eb.extend(suffix_b);
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
        }

        #[test]
        fn skipping_measures_what_decoding_consumes(v in key_value(), suffix in suffix()) {
            let mut bytes = encode(v.as_ref());
            let len = bytes.len();
            bytes.extend(suffix);
            prop_assert_eq!(encoded_key_value_len(&bytes), Some(len));
            // Cut short, it is no whole encoding.
            prop_assert_eq!(encoded_key_value_len(&bytes[..len - 1]), None);
        }

        #[test]
        fn skipping_agrees_with_decoding_on_any_bytes(bytes in any_bytes_like_encodings()) {
            if let Ok((_, consumed)) = decode_key_value(&bytes) {
                prop_assert_eq!(encoded_key_value_len(&bytes), Some(consumed));
            }
            if let Some(len) = encoded_key_value_len(&bytes) {
                prop_assert!(len <= bytes.len());
                // It read nothing past the value: the same length without what follows.
                prop_assert_eq!(encoded_key_value_len(&bytes[..len]), Some(len));
            }
        }

        #[test]
        fn decode_inverts_encode(v in key_value(), suffix in suffix()) {
            let mut bytes = encode(v.as_ref());
            let len = bytes.len();
            bytes.extend(suffix);
            prop_assert_eq!(decode_key_value(&bytes), Ok((v, len)));
        }

        #[test]
        fn documents_round_trip(document in object()) {
            let bytes = encode_document(&document);
            prop_assert_eq!(bytes.len(), document_size(&document));
            prop_assert_eq!(decode_document(&bytes), Ok(document));
        }

        #[test]
        fn decode_accepts_only_canonical_encodings(bytes in any_bytes_like_encodings()) {
            if let Ok((value, consumed)) = decode_key_value(&bytes) {
                prop_assert_eq!(encode(value.as_ref()), &bytes[..consumed]);
            }
        }

        #[test]
        fn decode_rejects_or_reencodes_mutated_encodings(
            v in value(),
            position in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            mutation in 0..3u8,
        ) {
            let mut bytes = encode(Some(&v));
            let at = position.index(bytes.len());
            match mutation {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => { bytes.remove(at); }
            }
            if let Ok((value, consumed)) = decode_key_value(&bytes) {
                prop_assert_eq!(encode(value.as_ref()), &bytes[..consumed]);
            }
        }
    }
}
