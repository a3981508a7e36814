//! The records of the keyspace `node` (the node's record, one per
//! database, and the prefixes of the clock floors and of each database's
//! metadata) and the store's fixed-size values (logical clocks and update
//! numbers, ids, the id a conflict's key starts with), read through the
//! crate's checked reader. A value that does not read whole is corrupt,
//! and says what it was and its bytes.

use crate::codec::{ReadError, Reader};
use crate::error::StorageError;
use crate::event::{EventId, Timestamp};
use crate::storage::{DatabaseRecord, NodeRecord, StorageResult};

/// The key of the node's record: format version u32 | node id (16 bytes).
pub(super) const NODE_KEY: &[u8] = b"node";
/// Where each database's record starts: `db/{name}` ->
/// incarnation u128 | created_at ms u64.
pub(super) const DATABASE_PREFIX: &str = "db/";
/// Where each database's clock floor starts: `hlc/{name}` -> id.
pub(super) const HLC_PREFIX: &str = "hlc/";
/// Where each database's own metadata starts: `dbmeta/{name}/{key}`.
pub(super) const DATABASE_META_PREFIX: &str = "dbmeta/";

/// The node's record as stored.
pub(super) fn encode_node(record: &NodeRecord) -> Vec<u8> {
    let mut value = record.format_version.to_be_bytes().to_vec();
    value.extend_from_slice(&record.node_id.to_bytes());
    value
}

/// The node's record from its stored `value`.
pub(super) fn decode_node(value: &[u8]) -> StorageResult<NodeRecord> {
    let mut reader = Reader::new(value);
    let format_version = reader
        .u32("the format version")
        .map_err(|_| corrupt("node record", value))?;
    let node_id = whole(reader.rest(), "node record", |id| id.array("the node id"))?;
    Ok(NodeRecord {
        format_version,
        node_id: EventId::from_bytes(node_id),
    })
}

/// A database's record as stored, under its key from [`DATABASE_PREFIX`].
pub(super) fn encode_database(record: &DatabaseRecord) -> Vec<u8> {
    let mut value = record.incarnation.to_be_bytes().to_vec();
    value.extend_from_slice(&record.created_at.0.to_be_bytes());
    value
}

/// A database's record from its stored `key` and `value`.
pub(super) fn decode_database(key: &[u8], value: &[u8]) -> StorageResult<DatabaseRecord> {
    let name = key
        .strip_prefix(DATABASE_PREFIX.as_bytes())
        .and_then(|name| std::str::from_utf8(name).ok())
        .ok_or_else(|| corrupt("database name", key))?;
    let mut reader = Reader::new(value);
    let incarnation = reader
        .u128("the incarnation")
        .map_err(|_| corrupt("database record", value))?;
    let created_ms = whole(reader.rest(), "database record", |created| {
        created.u64("the creation time")
    })?;
    Ok(DatabaseRecord {
        name: name.to_owned(),
        incarnation,
        created_at: Timestamp(created_ms),
    })
}

/// A logical clock or an update number (a key of the log or of the
/// updates, a value of the id index).
pub(super) fn decode_lc(bytes: &[u8]) -> StorageResult<u64> {
    whole(bytes, "logical clock", |lc| lc.u64("the logical clock"))
}

/// An id stored as its 16 bytes, `what` if it is not.
pub(super) fn decode_id(bytes: &[u8], what: &'static str) -> StorageResult<EventId> {
    whole(bytes, what, |id| id.array("the id")).map(EventId::from_bytes)
}

/// The id a key of a database's conflicts starts with (id | n u32). A key
/// shorter than an id has no id to show in its error.
pub(super) fn conflict_id(key: &[u8]) -> StorageResult<EventId> {
    let id = Reader::new(key)
        .array("the id")
        .map_err(|_| corrupt("conflict key", &[]))?;
    Ok(EventId::from_bytes(id))
}

/// What `read` reads of `bytes`, which must be all of them: `what` is
/// corrupt otherwise.
pub(super) fn whole<T>(
    bytes: &[u8],
    what: &'static str,
    read: impl FnOnce(&mut Reader<&[u8]>) -> Result<T, ReadError>,
) -> StorageResult<T> {
    let mut reader = Reader::new(bytes);
    let value = read(&mut reader).map_err(|_| corrupt(what, bytes))?;
    reader.end().map_err(|_| corrupt(what, bytes))?;
    Ok(value)
}

/// Stored bytes that do not decode as `what`, shown up to 32 of them.
pub(super) fn corrupt(what: &'static str, bytes: &[u8]) -> StorageError {
    StorageError::Corrupt {
        what,
        detail: format!(
            "{} bytes: {:02x?}",
            bytes.len(),
            bytes.get(..32).unwrap_or(bytes)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let node = NodeRecord {
            format_version: 1,
            node_id: EventId::from_parts(2, 3),
        };
        assert_eq!(decode_node(&encode_node(&node)).expect("node"), node);
        let database = DatabaseRecord {
            name: "shipments".to_owned(),
            incarnation: u128::MAX,
            created_at: Timestamp(4),
        };
        let key = format!("{DATABASE_PREFIX}shipments");
        let decoded = decode_database(key.as_bytes(), &encode_database(&database));
        assert_eq!(decoded.expect("database"), database);
        assert_eq!(decode_lc(&7_u64.to_be_bytes()).expect("lc"), 7);
    }

    #[test]
    fn a_record_cut_or_padded_is_corrupt_and_says_what_it_was() {
        let node = encode_node(&NodeRecord {
            format_version: 1,
            node_id: EventId::from_parts(2, 3),
        });
        let database = encode_database(&DatabaseRecord {
            name: "d".to_owned(),
            incarnation: 5,
            created_at: Timestamp(6),
        });
        let lc = 7_u64.to_be_bytes().to_vec();
        let id = EventId::from_parts(8, 9).to_bytes().to_vec();
        type Decode = fn(&[u8]) -> StorageResult<()>;
        let formats: [(&str, Vec<u8>, Decode); 4] = [
            ("node record", node, |bytes| decode_node(bytes).map(drop)),
            ("database record", database, |bytes| {
                decode_database(b"db/d", bytes).map(drop)
            }),
            ("logical clock", lc, |bytes| decode_lc(bytes).map(drop)),
            ("clock floor", id, |bytes| {
                decode_id(bytes, "clock floor").map(drop)
            }),
        ];
        for (what, bytes, decode) in formats {
            assert!(decode(&bytes).is_ok(), "{what} decodes");
            let mut padded = bytes.clone();
            padded.push(0);
            for cut in (0..bytes.len())
                .map(|cut| &bytes[..cut])
                .chain([&padded[..]])
            {
                let error = decode(cut).expect_err("corrupt");
                assert!(
                    error.to_string().starts_with(&format!("corrupt {what}: ")),
                    "{what} of {} bytes: {error}",
                    cut.len()
                );
            }
        }
        let error = decode_database(b"db/\xff", &[0; 24]).expect_err("not UTF-8");
        assert!(error.to_string().starts_with("corrupt database name: "));
    }
}
