//! Reading the crate's binary encodings: the sync messages, the binary
//! bodies of the HTTP API and the records the store keeps. [`Reader`] is
//! `bytes::Buf` with a check before every read: each getter takes the name
//! of its field and, when the input ends inside it, says which field it
//! was, where it starts and how many bytes it lacked, instead of panicking.
//! It adds what `Buf` lacks: taking `n` bytes as `Bytes` or as a borrowed
//! slice, counts checked against the bytes left, and the end of the input.
//!
//! What the bytes mean, and the error each format reports, belong to the
//! module of the format: this one knows nothing else of the crate.

use std::fmt;

use bytes::{Buf, Bytes, TryGetError};

/// Why the input did not read as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The input ends inside a field.
    Short {
        /// The field.
        field: &'static str,
        /// Where the field starts, in bytes from the start of the input.
        at: usize,
        /// The bytes the field takes.
        wanted: usize,
        /// The bytes there were left.
        left: usize,
    },
    /// A count of items promises more items than the bytes left can hold.
    Count {
        /// The field the count is of.
        field: &'static str,
        /// Where the count starts.
        at: usize,
        /// The count.
        count: usize,
        /// The bytes left after the count.
        left: usize,
    },
    /// Bytes follow what was read, where none should.
    Trailing {
        /// Where they start.
        at: usize,
        /// How many there are.
        left: usize,
    },
}

impl ReadError {
    /// The bytes that were left there.
    pub(crate) fn left(&self) -> usize {
        match self {
            ReadError::Short { left, .. }
            | ReadError::Count { left, .. }
            | ReadError::Trailing { left, .. } => *left,
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Short {
                field,
                at,
                wanted,
                left,
            } => write!(
                f,
                "the input ends inside {field} (at byte {at}: it takes {wanted} bytes, {left} are left)"
            ),
            ReadError::Count {
                field,
                at,
                count,
                left,
            } => write!(
                f,
                "a count of {count} {field} (at byte {at}) exceeds the {left} bytes left"
            ),
            ReadError::Trailing { at, left } => {
                write!(f, "{left} bytes follow the end at byte {at}")
            }
        }
    }
}

impl std::error::Error for ReadError {}

/// A checked reader over `B`, which counts where it is from the start.
#[derive(Clone, Debug)]
pub(crate) struct Reader<B> {
    buf: B,
    /// The bytes there were at the start, to tell where a field starts.
    len: usize,
}

impl<B: Buf> Reader<B> {
    /// A reader at the start of `buf`.
    pub(crate) fn new(buf: B) -> Reader<B> {
        let len = buf.remaining();
        Reader { buf, len }
    }

    /// Where the next field starts, in bytes from the start of the input.
    pub(crate) fn offset(&self) -> usize {
        self.len - self.buf.remaining()
    }

    /// The bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.remaining()
    }

    /// A byte.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ReadError> {
        let at = self.offset();
        self.buf
            .try_get_u8()
            .map_err(|error| short(field, at, error))
    }

    /// A big-endian `u32`.
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ReadError> {
        let at = self.offset();
        self.buf
            .try_get_u32()
            .map_err(|error| short(field, at, error))
    }

    /// A big-endian `u64`.
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ReadError> {
        let at = self.offset();
        self.buf
            .try_get_u64()
            .map_err(|error| short(field, at, error))
    }

    /// A big-endian `u128`.
    pub(crate) fn u128(&mut self, field: &'static str) -> Result<u128, ReadError> {
        let at = self.offset();
        self.buf
            .try_get_u128()
            .map_err(|error| short(field, at, error))
    }

    /// `N` bytes, as they are.
    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], ReadError> {
        let at = self.offset();
        let mut array = [0; N];
        self.buf
            .try_copy_to_slice(&mut array)
            .map_err(|error| short(field, at, error))?;
        Ok(array)
    }

    /// The next `length` bytes, without a copy when `B` is `Bytes`.
    pub(crate) fn bytes(&mut self, length: usize, field: &'static str) -> Result<Bytes, ReadError> {
        self.check(length, field)?;
        Ok(self.buf.copy_to_bytes(length))
    }

    /// Passes over the next `length` bytes.
    pub(crate) fn skip(&mut self, length: usize, field: &'static str) -> Result<(), ReadError> {
        self.check(length, field)?;
        self.buf.advance(length);
        Ok(())
    }

    /// A `u32` count of items that take at least `item_bytes` each: a count
    /// the bytes left cannot hold is refused before anything is allocated
    /// for it.
    pub(crate) fn count(
        &mut self,
        item_bytes: usize,
        field: &'static str,
    ) -> Result<usize, ReadError> {
        let at = self.offset();
        let count = usize::try_from(self.u32(field)?).unwrap_or(usize::MAX);
        let left = self.remaining();
        let room = left.checked_div(item_bytes).unwrap_or(usize::MAX);
        if count > room {
            return Err(ReadError::Count {
                field,
                at,
                count,
                left,
            });
        }
        Ok(count)
    }

    /// Whether every byte was read.
    pub(crate) fn end(&self) -> Result<(), ReadError> {
        match self.remaining() {
            0 => Ok(()),
            left => Err(ReadError::Trailing {
                at: self.offset(),
                left,
            }),
        }
    }

    /// An error unless at least `length` bytes are left.
    fn check(&self, length: usize, field: &'static str) -> Result<(), ReadError> {
        if self.remaining() < length {
            return Err(self.lacking(length, field));
        }
        Ok(())
    }

    /// The error of `field`, of `length` bytes, when fewer are left.
    fn lacking(&self, length: usize, field: &'static str) -> ReadError {
        ReadError::Short {
            field,
            at: self.offset(),
            wanted: length,
            left: self.remaining(),
        }
    }
}

impl<'a> Reader<&'a [u8]> {
    /// The next `length` bytes, borrowed from the input.
    pub(crate) fn slice(
        &mut self,
        length: usize,
        field: &'static str,
    ) -> Result<&'a [u8], ReadError> {
        let (head, tail) = self
            .buf
            .split_at_checked(length)
            .ok_or_else(|| self.lacking(length, field))?;
        self.buf = tail;
        Ok(head)
    }

    /// Every byte left, borrowed from the input; the reader is at its end.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
}

fn short(field: &'static str, at: usize, error: TryGetError) -> ReadError {
    ReadError::Short {
        field,
        at,
        wanted: error.requested,
        left: error.available,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every getter on the same input: the field it names, the bytes it
    /// takes, and what it read.
    fn read_each(input: &[u8]) -> Vec<(&'static str, usize, Result<(), ReadError>)> {
        let reader = || Reader::new(input);
        vec![
            ("a u8", 1, reader().u8("a u8").map(drop)),
            ("a u32", 4, reader().u32("a u32").map(drop)),
            ("a u64", 8, reader().u64("a u64").map(drop)),
            ("a u128", 16, reader().u128("a u128").map(drop)),
            ("an array", 5, reader().array::<5>("an array").map(drop)),
            ("bytes", 5, reader().bytes(5, "bytes").map(drop)),
            ("a skip", 5, reader().skip(5, "a skip")),
            ("a slice", 5, reader().slice(5, "a slice").map(drop)),
            ("a count", 4, reader().count(1, "a count").map(drop)),
        ]
    }

    #[test]
    fn each_getter_on_short_input_names_its_field_and_where_it_starts() {
        for length in 0..20 {
            let input = vec![0; length];
            for (field, wanted, read) in read_each(&input) {
                if length >= wanted {
                    assert_eq!(read, Ok(()), "{field} of {length} bytes");
                    continue;
                }
                let error = read.expect_err("short");
                let short = ReadError::Short {
                    field,
                    at: 0,
                    wanted,
                    left: length,
                };
                assert_eq!(error, short, "{field} of {length} bytes");
                assert!(error.to_string().contains(field), "{error}");
            }
        }
    }

    #[test]
    fn a_short_field_is_placed_after_what_was_read_and_consumes_nothing() {
        let mut reader = Reader::new(&[1, 2, 3, 4, 5, 6][..]);
        assert_eq!(reader.u32("the first"), Ok(0x0102_0304));
        let error = reader.u64("the second").expect_err("short");
        assert_eq!(
            error,
            ReadError::Short {
                field: "the second",
                at: 4,
                wanted: 8,
                left: 2,
            }
        );
        assert_eq!(error.left(), 2);
        assert_eq!(
            error.to_string(),
            "the input ends inside the second (at byte 4: it takes 8 bytes, 2 are left)"
        );
        assert_eq!(reader.remaining(), 2, "a refused read takes nothing");
        assert_eq!(reader.array("the third"), Ok([5, 6]));
        assert_eq!(reader.end(), Ok(()));
    }

    #[test]
    fn values_read_big_endian_and_bytes_are_slices_of_the_input() {
        let input = Bytes::from_static(&[0, 0, 0, 1, 0xaa, 0xbb, 7]);
        let mut reader = Reader::new(input.clone());
        let count = reader.count(2, "the items").expect("count");
        assert_eq!(count, 1);
        let data = reader.bytes(2, "the item").expect("item");
        assert_eq!(&data[..], [0xaa, 0xbb]);
        assert_eq!(data.as_ptr(), input[4..].as_ptr(), "no copy");
        assert_eq!(
            reader.end(),
            Err(ReadError::Trailing { at: 6, left: 1 }),
            "one byte is left"
        );
        let mut borrowed = Reader::new(&input[..]);
        assert_eq!(borrowed.slice(4, "the head"), Ok(&[0, 0, 0, 1][..]));
        assert_eq!(borrowed.rest(), [0xaa, 0xbb, 7]);
        assert_eq!(borrowed.end(), Ok(()));
    }

    #[test]
    fn a_count_larger_than_the_bytes_left_is_refused() {
        let mut reader = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0][..]);
        assert_eq!(
            reader.count(1, "the events"),
            Err(ReadError::Count {
                field: "the events",
                at: 0,
                count: 0xffff_ffff,
                left: 1,
            })
        );
        let triples = |count: u8| {
            let mut input = vec![0, 0, 0, count];
            input.extend_from_slice(&[0; 9]);
            Reader::new(&input[..]).count(3, "triples")
        };
        assert_eq!(triples(3), Ok(3));
        assert!(triples(4).is_err(), "four do not fit in 9 bytes");
        let mut reader = Reader::new(&[0, 0, 0, 9][..]);
        assert_eq!(reader.count(0, "nothings"), Ok(9), "items of no bytes");
    }

    proptest! {
        /// Any getter on any input either reads or refuses, and never
        /// reads past the input.
        #[test]
        fn getters_never_panic(input in proptest::collection::vec(any::<u8>(), 0..40), length in 0_usize..64) {
            let mut reader = Reader::new(&input[..]);
            let _ = reader.slice(length, "a slice");
            let _ = reader.bytes(length, "bytes");
            let _ = reader.skip(length, "a skip");
            let _ = reader.count(length, "a count");
            let _ = reader.u128("a u128");
            prop_assert!(reader.offset() <= input.len());
            prop_assert_eq!(reader.offset() + reader.remaining(), input.len());
        }
    }
}
