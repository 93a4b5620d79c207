//! Document ids in Convex's v6 string format.
//!
//! An id is a table number and 16 internal bytes. Its binary form is
//!
//! ```text
//! VInt(table number) ++ internal bytes ++ footer
//! footer = (fletcher16(VInt(table number) ++ internal bytes) ^ VERSION) as u16 little-endian
//! ```
//!
//! where VInt writes 7 bits per byte, least significant group first, with 0x80 marking that
//! another byte follows (1 to 5 bytes for a u32). The string form is that binary in lowercase
//! Crockford base32, most significant bit first, without padding.
//!
//! Decoding is stricter than Convex's: every id has exactly one accepted string form, so
//! strings can be compared and hashed as ids.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use crate::path::shorten;

/// The length of a document's internal id, in bytes.
pub const INTERNAL_ID_LEN: usize = 16;

/// The shortest encoded id: a one-byte table number.
pub const MIN_ENCODED_ID_LEN: usize = base32_len(MIN_BINARY_LEN);

/// The longest encoded id: a five-byte table number.
pub const MAX_ENCODED_ID_LEN: usize = base32_len(MAX_BINARY_LEN);

const MAX_VINT_LEN: usize = 5;
const FOOTER_LEN: usize = 2;
const MIN_BINARY_LEN: usize = 1 + INTERNAL_ID_LEN + FOOTER_LEN;
const MAX_BINARY_LEN: usize = MAX_VINT_LEN + INTERNAL_ID_LEN + FOOTER_LEN;

/// XOR'd into the checksum; Convex's v6 ids use version 0.
const VERSION: u16 = 0;

const MILLIS_PER_DAY: u64 = 24 * 60 * 60 * 1000;

/// The number of random bytes at the start of a generated internal id.
const RANDOM_LEN: usize = INTERNAL_ID_LEN - 2;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Maps a character to its base32 digit, or [`NOT_A_DIGIT`].
const DIGITS: [u8; 256] = {
    let mut digits = [NOT_A_DIGIT; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        digits[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    digits
};
const NOT_A_DIGIT: u8 = 0xFF;

const fn base32_len(binary_len: usize) -> usize {
    (binary_len * 8).div_ceil(5)
}

/// A table's number, which ids carry instead of its name. Never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableNumber(NonZeroU32);

impl TableNumber {
    /// `None` for zero, which no table has.
    pub const fn new(number: u32) -> Option<TableNumber> {
        match NonZeroU32::new(number) {
            Some(number) => Some(TableNumber(number)),
            None => None,
        }
    }

    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for TableNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A document's id: its table's number and 16 bytes unique within the table.
///
/// Ordered by table, then internal bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocumentId {
    table: TableNumber,
    internal: [u8; INTERNAL_ID_LEN],
}

/// Why a string is not a document id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error(
        "Invalid document id `{id}`: it is {len} characters long, but ids are 31, 32, 34, 36 or \
         37 characters long."
    )]
    InvalidLength { id: String, len: usize },
    #[error(
        "Invalid document id `{id}`: character {character:?} at position {position} is not in \
         the id alphabet `0123456789abcdefghjkmnpqrstvwxyz`."
    )]
    InvalidCharacter { id: String, position: usize, character: char },
    #[error(
        "Invalid document id `{id}`: its last character has non-zero padding bits, so it is not \
         the canonical spelling of any id."
    )]
    NonZeroPadding { id: String },
    #[error(
        "Invalid document id `{id}`: its table number is not a canonical variable-length \
         integer of at most 32 bits."
    )]
    InvalidTableNumber { id: String },
    #[error("Invalid document id `{id}`: its table number is zero, which no table has.")]
    ZeroTableNumber { id: String },
    #[error("Invalid document id `{id}`: its length does not match the length of its table number.")]
    LengthMismatch { id: String },
    #[error("Invalid document id `{id}`: its checksum does not match, so it is corrupted.")]
    ChecksumMismatch { id: String },
}

impl DocumentId {
    pub const fn new(table: TableNumber, internal: [u8; INTERNAL_ID_LEN]) -> DocumentId {
        DocumentId { table, internal }
    }

    /// A new id for a document created at `unix_millis`: 14 random bytes, then the number of
    /// days since the Unix epoch as a big-endian u16 (saturating). Ids minted on different
    /// days can thus never collide, whatever the random source does.
    pub fn generate(table: TableNumber, rng: &mut impl rand::Rng, unix_millis: u64) -> DocumentId {
        let mut internal = [0u8; INTERNAL_ID_LEN];
        rng.fill_bytes(&mut internal[..RANDOM_LEN]);
        let days = u16::try_from(unix_millis / MILLIS_PER_DAY).unwrap_or(u16::MAX);
        internal[RANDOM_LEN..].copy_from_slice(&days.to_be_bytes());
        DocumentId { table, internal }
    }

    pub const fn table(&self) -> TableNumber {
        self.table
    }

    pub const fn internal(&self) -> [u8; INTERNAL_ID_LEN] {
        self.internal
    }

    /// The id's string form, between [`MIN_ENCODED_ID_LEN`] and [`MAX_ENCODED_ID_LEN`]
    /// characters long.
    pub fn encode(&self) -> String {
        let mut binary = [0u8; MAX_BINARY_LEN];
        let mut len = encode_vint(self.table.get(), &mut binary);
        binary[len..len + INTERNAL_ID_LEN].copy_from_slice(&self.internal);
        len += INTERNAL_ID_LEN;
        let footer = fletcher16(&binary[..len]) ^ VERSION;
        binary[len..len + FOOTER_LEN].copy_from_slice(&footer.to_le_bytes());
        len += FOOTER_LEN;

        let encoded = encode_base32(&binary[..len]);
        assert!((MIN_ENCODED_ID_LEN..=MAX_ENCODED_ID_LEN).contains(&encoded.len()));
        encoded
    }

    /// Parses an id's string form, accepting only the exact output of [`DocumentId::encode`].
    pub fn decode(id: &str) -> Result<DocumentId, IdError> {
        // Before anything else, so that a huge string is rejected without being read.
        let binary_len = match (MIN_BINARY_LEN..=MAX_BINARY_LEN).find(|n| base32_len(*n) == id.len()) {
            Some(binary_len) => binary_len,
            None => {
                return Err(IdError::InvalidLength { id: shorten(id), len: id.len() });
            }
        };
        let mut binary = [0u8; MAX_BINARY_LEN];
        decode_base32(id, &mut binary[..binary_len])?;
        let binary = &binary[..binary_len];

        let (table, vint_len) = decode_vint(binary).ok_or_else(|| IdError::InvalidTableNumber { id: id.to_owned() })?;
        let table = TableNumber::new(table).ok_or_else(|| IdError::ZeroTableNumber { id: id.to_owned() })?;
        if vint_len + INTERNAL_ID_LEN + FOOTER_LEN != binary_len {
            return Err(IdError::LengthMismatch { id: id.to_owned() });
        }
        let (body, footer) = binary.split_at(binary_len - FOOTER_LEN);
        let footer = u16::from_le_bytes([footer[0], footer[1]]);
        if fletcher16(body) ^ VERSION != footer {
            return Err(IdError::ChecksumMismatch { id: id.to_owned() });
        }
        let internal = body[vint_len..].try_into().expect("the length was checked");
        Ok(DocumentId { table, internal })
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({}, table {})", self.encode(), self.table)
    }
}

impl FromStr for DocumentId {
    type Err = IdError;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        DocumentId::decode(id)
    }
}

/// Writes `n` as a VInt into `out`, returning its length.
fn encode_vint(mut n: u32, out: &mut [u8]) -> usize {
    let mut len = 0;
    while n >= 0x80 {
        out[len] = (n as u8 & 0x7F) | 0x80;
        n >>= 7;
        len += 1;
    }
    out[len] = n as u8;
    len + 1
}

/// Reads a VInt from the start of `bytes`, returning it and its length, or `None` unless it is
/// the canonical (shortest) encoding of a u32.
fn decode_vint(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut n: u32 = 0;
    for (i, &byte) in bytes.iter().take(MAX_VINT_LEN).enumerate() {
        let group = u32::from(byte & 0x7F);
        // The fifth byte holds bits 28..32: only its low four bits fit in a u32.
        if i == MAX_VINT_LEN - 1 && group > 0x0F {
            return None;
        }
        n |= group << (7 * i);
        if byte & 0x80 == 0 {
            // A trailing zero group would be a longer spelling of a shorter number.
            let canonical = i == 0 || group != 0;
            return canonical.then_some((n, i + 1));
        }
    }
    None
}

/// Fletcher-16 with modulus 256, as Convex computes it.
fn fletcher16(bytes: &[u8]) -> u16 {
    let (mut c0, mut c1) = (0u8, 0u8);
    for &byte in bytes {
        c0 = c0.wrapping_add(byte);
        c1 = c1.wrapping_add(c0);
    }
    (u16::from(c1) << 8) | u16::from(c0)
}

fn encode_base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(base32_len(bytes.len()));
    let (mut buffer, mut bits) = (0u16, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[usize::from((buffer >> bits) & 0x1F)]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[usize::from((buffer << (5 - bits)) & 0x1F)]));
    }
    out
}

/// Decodes `id` into `out`, whose length the caller derived from `id`'s length.
fn decode_base32(id: &str, out: &mut [u8]) -> Result<(), IdError> {
    assert_eq!(base32_len(out.len()), id.len());
    let (mut buffer, mut bits, mut len) = (0u16, 0u32, 0);
    for (position, character) in id.char_indices() {
        let digit = u8::try_from(character).map_or(NOT_A_DIGIT, |c| DIGITS[usize::from(c)]);
        if digit == NOT_A_DIGIT {
            return Err(IdError::InvalidCharacter { id: id.to_owned(), position, character });
        }
        buffer = (buffer << 5) | u16::from(digit);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out[len] = (buffer >> bits) as u8;
            len += 1;
            buffer &= (1 << bits) - 1;
        }
    }
    assert_eq!(len, out.len());
    assert!(bits < 5);
    if buffer != 0 {
        return Err(IdError::NonZeroPadding { id: id.to_owned() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn table(number: u32) -> TableNumber {
        TableNumber::new(number).unwrap()
    }

    /// Table numbers at every VInt length boundary.
    const BOUNDARY_TABLES: [u32; 10] =
        [1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455, 268_435_456, u32::MAX];

    fn boundary_ids() -> Vec<DocumentId> {
        let mut rng = StdRng::seed_from_u64(6);
        let mut ids = vec![known_vector().0];
        for number in BOUNDARY_TABLES {
            for _ in 0..4 {
                ids.push(DocumentId::generate(table(number), &mut rng, 1_700_000_000_000));
            }
            ids.push(DocumentId::new(table(number), [0; INTERNAL_ID_LEN]));
            ids.push(DocumentId::new(table(number), [0xFF; INTERNAL_ID_LEN]));
        }
        ids
    }

    fn known_vector() -> (DocumentId, &'static str) {
        let mut internal = [251u8; INTERNAL_ID_LEN];
        for i in 1..INTERNAL_ID_LEN {
            internal[i] = internal[i - 1].wrapping_mul(251);
        }
        (DocumentId::new(table(1017), internal), "z43zp6c3e75gkmz1kfwj6mbbx5sw281h")
    }

    fn assert_rejected(candidate: &str, original: &DocumentId) {
        let result = DocumentId::decode(candidate);
        assert!(result.is_err(), "{candidate:?} (from {original:?}) decoded to {result:?}");
    }

    /// Every string one substitution away from `encoded`, within the alphabet and outside it.
    fn substitutions(encoded: &str) -> impl Iterator<Item = String> + '_ {
        let replacements = ALPHABET.iter().map(|b| char::from(*b)).chain("AZiloOu-_ é\0".chars());
        (0..encoded.len()).flat_map(move |position| {
            replacements.clone().filter_map(move |replacement| {
                let mut candidate = String::with_capacity(encoded.len() + 2);
                candidate.push_str(&encoded[..position]);
                candidate.push(replacement);
                candidate.push_str(&encoded[position + 1..]);
                (candidate != encoded).then_some(candidate)
            })
        })
    }

    #[test]
    fn known_vector_from_convex() {
        let (id, encoded) = known_vector();
        assert_eq!(id.encode(), encoded);
        assert_eq!(DocumentId::decode(encoded), Ok(id));
        assert_eq!(id.to_string(), encoded);
        assert_eq!(encoded.parse::<DocumentId>(), Ok(id));
    }

    #[test]
    fn encoded_lengths_follow_the_table_number() {
        let expected = [31, 31, 32, 32, 34, 34, 36, 36, 37, 37];
        for (number, len) in BOUNDARY_TABLES.into_iter().zip(expected) {
            let id = DocumentId::new(table(number), [7; INTERNAL_ID_LEN]);
            assert_eq!(id.encode().len(), len, "table {number}");
            assert_eq!(DocumentId::decode(&id.encode()), Ok(id));
        }
        assert_eq!((MIN_ENCODED_ID_LEN, MAX_ENCODED_ID_LEN), (31, 37));
    }

    #[test]
    fn generate_appends_the_day() {
        let mut rng = StdRng::seed_from_u64(1);
        let id = DocumentId::generate(table(3), &mut rng, 3 * MILLIS_PER_DAY + 5);
        assert_eq!(id.table(), table(3));
        assert_eq!(id.internal()[RANDOM_LEN..], [0, 3]);
        let other = DocumentId::generate(table(3), &mut rng, 3 * MILLIS_PER_DAY);
        assert_ne!(id.internal()[..RANDOM_LEN], other.internal()[..RANDOM_LEN]);
        let far_future = DocumentId::generate(table(3), &mut rng, u64::MAX);
        assert_eq!(far_future.internal()[RANDOM_LEN..], [0xFF, 0xFF]);
    }

    #[test]
    fn table_numbers() {
        assert_eq!(TableNumber::new(0), None);
        assert_eq!(table(42).get(), 42);
        assert_eq!(table(42).to_string(), "42");
    }

    #[test]
    fn every_single_character_substitution_is_rejected() {
        for id in boundary_ids() {
            let encoded = id.encode();
            for candidate in substitutions(&encoded) {
                assert_rejected(&candidate, &id);
            }
        }
    }

    #[test]
    fn every_truncation_insertion_and_deletion_is_rejected() {
        for id in boundary_ids() {
            let encoded = id.encode();
            for len in 0..encoded.len() {
                assert_rejected(&encoded[..len], &id);
            }
            for position in 0..encoded.len() {
                let mut deleted = encoded.clone();
                deleted.remove(position);
                assert_rejected(&deleted, &id);
            }
            for position in 0..=encoded.len() {
                for inserted in ALPHABET.iter().map(|b| char::from(*b)).chain(['A', '-']) {
                    let mut candidate = encoded.clone();
                    candidate.insert(position, inserted);
                    assert_rejected(&candidate, &id);
                }
            }
        }
    }

    #[test]
    fn uppercase_is_rejected() {
        let (id, encoded) = known_vector();
        assert_eq!(
            DocumentId::decode(&encoded.to_uppercase()),
            Err(IdError::InvalidCharacter { id: encoded.to_uppercase(), position: 0, character: 'Z' })
        );
        assert_eq!(DocumentId::decode(encoded), Ok(id));
    }

    #[test]
    fn specific_rejections() {
        let (_, encoded) = known_vector();
        let long = "z".repeat(10_000);
        let error = DocumentId::decode(&long).unwrap_err();
        assert!(matches!(error, IdError::InvalidLength { len: 10_000, .. }), "{error}");
        assert!(error.to_string().len() < 300, "{error}");

        // The last character of a 32-character id carries no padding (160 bits); one of
        // 31 characters carries 3 bits of it.
        let short = DocumentId::new(table(1), [0; INTERNAL_ID_LEN]).encode();
        let last = short.chars().last().unwrap();
        let digit = DIGITS[last as usize];
        assert_eq!(digit & 0b111, 0);
        let padded = format!("{}{}", &short[..30], char::from(ALPHABET[usize::from(digit | 1)]));
        assert_eq!(DocumentId::decode(&padded), Err(IdError::NonZeroPadding { id: padded.clone() }));

        let flipped = format!("{}{}", &encoded[..31], if encoded.ends_with('h') { 'j' } else { 'h' });
        assert_eq!(DocumentId::decode(&flipped), Err(IdError::ChecksumMismatch { id: flipped.clone() }));
    }

    #[test]
    fn binary_rejections() {
        let id_of = |binary: &[u8]| encode_base32(binary);
        let with_footer = |body: &[u8]| {
            let mut binary = body.to_vec();
            binary.extend_from_slice(&(fletcher16(body) ^ VERSION).to_le_bytes());
            binary
        };
        let internal = [9u8; INTERNAL_ID_LEN];

        // 0x80 0x00 spells 0 with two bytes; 0x81 0x00 spells 1 with two bytes.
        for vint in [&[0x80, 0x00][..], &[0x81, 0x00], &[0xFF, 0xFF, 0xFF, 0xFF, 0x10]] {
            let id = id_of(&with_footer(&[vint, &internal[..]].concat()));
            assert_eq!(DocumentId::decode(&id), Err(IdError::InvalidTableNumber { id: id.clone() }));
        }
        let zero = id_of(&with_footer(&[&[0x00][..], &internal[..]].concat()));
        assert_eq!(DocumentId::decode(&zero), Err(IdError::ZeroTableNumber { id: zero.clone() }));

        // A one-byte table number in a 20-byte binary leaves a trailing byte.
        let trailing = id_of(&with_footer(&[&[0x05][..], &internal[..], &[0]].concat()));
        assert_eq!(trailing.len(), 32);
        assert_eq!(DocumentId::decode(&trailing), Err(IdError::LengthMismatch { id: trailing.clone() }));
        // Version 1 footers are not v6 ids.
        let mut versioned = with_footer(&[&[0x05][..], &internal[..]].concat());
        versioned[INTERNAL_ID_LEN + 1] ^= 1;
        let versioned = id_of(&versioned);
        assert_eq!(DocumentId::decode(&versioned), Err(IdError::ChecksumMismatch { id: versioned.clone() }));
    }

    #[test]
    fn vint_round_trips_at_boundaries() {
        for number in BOUNDARY_TABLES.into_iter().chain([0, 300, 1 << 31]) {
            let mut buffer = [0u8; MAX_VINT_LEN];
            let len = encode_vint(number, &mut buffer);
            assert_eq!(decode_vint(&buffer[..len]), Some((number, len)));
        }
    }

    proptest! {
        #[test]
        fn ids_round_trip(
            number in prop_oneof![1u32..300, any::<u32>().prop_filter("non-zero", |n| *n != 0)],
            internal in any::<[u8; INTERNAL_ID_LEN]>(),
        ) {
            let id = DocumentId::new(table(number), internal);
            let encoded = id.encode();
            prop_assert!(encoded.bytes().all(|b| ALPHABET.contains(&b)));
            prop_assert_eq!(DocumentId::decode(&encoded), Ok(id));
        }

        #[test]
        fn substitutions_truncations_and_appends_are_rejected(
            number in any::<u32>().prop_filter("non-zero", |n| *n != 0),
            internal in any::<[u8; INTERNAL_ID_LEN]>(),
        ) {
            // Each of these is caught by the length, the table number's length or the
            // checksum with certainty, not by chance, so random ids cannot make this flaky.
            let id = DocumentId::new(table(number), internal);
            let encoded = id.encode();
            for candidate in substitutions(&encoded) {
                prop_assert!(DocumentId::decode(&candidate).is_err(), "{}", candidate);
            }
            for len in 0..encoded.len() {
                prop_assert!(DocumentId::decode(&encoded[..len]).is_err());
            }
            for appended in ALPHABET.iter().map(|b| char::from(*b)) {
                let candidate = format!("{encoded}{appended}");
                prop_assert!(DocumentId::decode(&candidate).is_err(), "{}", candidate);
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(id in any::<String>()) {
            let _ = DocumentId::decode(&id);
        }

        #[test]
        fn alphabet_strings_decode_only_to_their_own_encoding(
            id in "[0-9a-hjkmnp-tv-z]{31,37}",
        ) {
            if let Ok(decoded) = DocumentId::decode(&id) {
                prop_assert_eq!(decoded.encode(), id);
            }
        }

        #[test]
        fn vints_round_trip(number in any::<u32>()) {
            let mut buffer = [0u8; MAX_VINT_LEN];
            let len = encode_vint(number, &mut buffer);
            prop_assert_eq!(decode_vint(&buffer[..len]), Some((number, len)));
        }
    }
}
