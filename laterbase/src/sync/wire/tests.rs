//! Tests of the sync messages on the wire: the first release's messages
//! byte for byte, round trips in the current version, what each part of a
//! message costs, and refusals of short, padded or hostile bytes.

use bytes::Bytes;
use proptest::prelude::*;

use super::{
    FillRequest, VERSION, VERSION_OLDEST, decode_deliver, decode_fill, decode_offer, decode_reply,
    encode_deliver, encode_fill, encode_offer, encode_reply, version_of, version_refused,
};
use crate::event::{Event, EventId, Timestamp};
use crate::sync::messages::{
    Cursor, Deliver, Digest, Entries, EpochStart, Fill, Held, IdDigest, Loser, LoserPage, Offer,
    Page, Reply, Summary,
};

fn cursor(lc: u64) -> Cursor {
    Cursor {
        incarnation: 1 << 100,
        epoch: 3,
        lc,
        us: lc / 2,
    }
}

fn event(n: u64) -> Event {
    Event {
        id: EventId::from_parts(n, u128::from(n)),
        data: Bytes::from(vec![n as u8; n as usize]),
        recorded_at: Timestamp(n * 7),
        lc: 0,
    }
}

fn ids_page() -> Page {
    Page {
        from: cursor(5),
        to: cursor(9),
        more: true,
        entries: Entries::Ids(vec![
            IdDigest {
                id: event(1).id,
                digest: Digest(42),
            },
            IdDigest {
                id: event(2).id,
                digest: Digest(u64::MAX),
            },
        ]),
        held: Vec::new(),
    }
}

fn events_page() -> Page {
    Page {
        entries: Entries::Events(vec![event(3), event(0)]),
        more: false,
        ..ids_page()
    }
}

fn summary() -> Summary {
    Summary {
        incarnation: 9,
        history: vec![
            EpochStart {
                epoch: 2,
                start_lc: 1,
                start_us: 0,
            },
            EpochStart {
                epoch: 5,
                start_lc: 4,
                start_us: 1,
            },
        ],
        head_lc: 10,
        head_us: 1,
    }
}

/// The messages of the version 2 fixtures, as the first release built
/// them (no field of version 3 set).
fn release_messages() -> (Offer, Offer, Reply, FillRequest, Deliver) {
    let offer = Offer {
        pull: Some(cursor(4)),
        bulk: false,
        summary: summary(),
        push: ids_page(),
        losers_listed: 0,
    };
    let offer_events = Offer {
        pull: None,
        bulk: true,
        summary: summary(),
        push: events_page(),
        losers_listed: 0,
    };
    let reply = Reply {
        missing: vec![event(2).id],
        page: events_page(),
        cursor_at_initiator: cursor(1),
        push_taken: true,
        cursor_stored: Some(cursor(2)),
        remaining: 12,
        losers_listed: 3,
        losers_wanted: None,
    };
    let fill = FillRequest {
        fill: Fill {
            events: vec![event(4)],
            complete: false,
            push_to: cursor(8),
            want: vec![event(5).id],
            losers: None,
            losers_wanted: None,
        },
        missing: vec![event(4).id],
        push_taken: false,
        cursor_stored: None,
    };
    let deliver = Deliver {
        events: vec![event(6)],
        complete: true,
        losers: None,
    };
    (offer, offer_events, reply, fill, deliver)
}

fn fixture(name: &str) -> Bytes {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/sync-v2")
        .join(name);
    Bytes::from(std::fs::read(&path).expect("the fixture is committed"))
}

#[test]
fn the_first_release_messages_decode_and_encode_to_the_same_bytes() {
    let (offer, offer_events, reply, fill, deliver) = release_messages();
    for (name, offer) in [("offer.bin", offer), ("offer-events.bin", offer_events)] {
        let bytes = fixture(name);
        assert_eq!(version_of(&bytes), Ok(VERSION_OLDEST), "{name}");
        assert_eq!(decode_offer(&bytes).expect("decodes"), offer, "{name}");
        assert_eq!(encode_offer(&offer, VERSION_OLDEST), bytes, "{name}");
    }
    let bytes = fixture("reply.bin");
    assert_eq!(decode_reply(&bytes).expect("decodes"), reply);
    assert_eq!(encode_reply(&reply, VERSION_OLDEST), bytes);
    let bytes = fixture("fill.bin");
    assert_eq!(decode_fill(&bytes).expect("decodes"), fill);
    assert_eq!(encode_fill(&fill, VERSION_OLDEST), bytes);
    let bytes = fixture("deliver.bin");
    assert_eq!(decode_deliver(&bytes).expect("decodes"), deliver);
    assert_eq!(encode_deliver(&deliver, VERSION_OLDEST), bytes);
}

#[test]
fn every_message_round_trips_in_the_current_version() {
    let (mut offer, _, mut reply, mut fill, mut deliver) = release_messages();
    offer.losers_listed = 7;
    offer.push.held = vec![Held {
        after_lc: 6,
        to_lc: 8,
        incarnation: 11,
        epoch: u128::MAX,
    }];
    let bytes = encode_offer(&offer, VERSION);
    assert_eq!(version_of(&bytes), Ok(VERSION));
    assert_eq!(decode_offer(&bytes).expect("offer"), offer);
    for wanted in [None, Some(None), Some(Some(event(9).id))] {
        reply.losers_wanted = wanted;
        let bytes = encode_reply(&reply, VERSION);
        assert_eq!(decode_reply(&bytes).expect("reply"), reply);
    }
    let losers = LoserPage {
        after: Some(event(1).id),
        losers: vec![
            Loser {
                id: event(2).id,
                data: Bytes::from_static(b"{\"b\":1} "),
            },
            Loser {
                id: event(2).id,
                data: Bytes::new(),
            },
        ],
        more: true,
    };
    fill.fill.losers = Some(losers.clone());
    fill.fill.losers_wanted = Some(None);
    assert_eq!(
        decode_fill(&encode_fill(&fill, VERSION)).expect("fill"),
        fill
    );
    deliver.losers = Some(LoserPage {
        after: None,
        more: false,
        ..losers
    });
    assert_eq!(
        decode_deliver(&encode_deliver(&deliver, VERSION)).expect("deliver"),
        deliver
    );
}

/// What each part of a message costs, against what `limits` counts:
/// the checks there of messages against the peers' limits hold only if
/// the encoder spends no more.
#[test]
fn messages_cost_what_the_limits_count() {
    use crate::limits::{
        SYNC_EPOCH_BYTES, SYNC_EVENT_FRAMING_BYTES, SYNC_ID_BYTES, SYNC_ID_DIGEST_BYTES,
        SYNC_LOSER_FRAMING_BYTES, SYNC_MESSAGE_FIXED_BYTES_MAX, SYNC_RUN_BYTES,
        SYNC_V2_FILL_FRAMING_BYTES,
    };
    let (mut offer, _, mut reply, mut fill, mut deliver) = release_messages();
    let run = Held {
        after_lc: 1,
        to_lc: 2,
        incarnation: 3,
        epoch: 4,
    };
    // Every fixed field at its largest: options set, positions named.
    reply.losers_wanted = Some(Some(event(1).id));
    fill.fill.losers_wanted = Some(Some(event(1).id));
    fill.cursor_stored = Some(cursor(1));
    let no_losers = LoserPage {
        after: Some(event(1).id),
        losers: Vec::new(),
        more: true,
    };
    fill.fill.losers = Some(no_losers.clone());
    deliver.losers = Some(no_losers);
    let (no_events, no_ids) = (Entries::Events(Vec::new()), Entries::Ids(Vec::new()));
    offer.push.entries = no_ids;
    offer.summary.history.clear();
    reply.page.entries = no_events;
    reply.missing.clear();
    (fill.fill.events, fill.fill.want, fill.missing) = (Vec::new(), Vec::new(), Vec::new());
    deliver.events.clear();
    let offer_len = |offer: &Offer| encode_offer(offer, VERSION).len();
    let reply_len = |reply: &Reply| encode_reply(reply, VERSION).len();
    let fill_len = |fill: &FillRequest| encode_fill(fill, VERSION).len();
    let deliver_len = |deliver: &Deliver| encode_deliver(deliver, VERSION).len();
    for fixed in [
        offer_len(&offer),
        reply_len(&reply),
        fill_len(&fill),
        deliver_len(&deliver),
    ] {
        assert!(fixed <= SYNC_MESSAGE_FIXED_BYTES_MAX, "{fixed}");
    }
    // Each item, by what it adds.
    let base = (offer_len(&offer), fill_len(&fill), deliver_len(&deliver));
    offer.summary.history.push(summary().history[0]);
    offer.push.held.push(run);
    offer.push.entries = Entries::Ids(vec![IdDigest {
        id: event(1).id,
        digest: Digest(1),
    }]);
    assert_eq!(
        offer_len(&offer) - base.0,
        SYNC_EPOCH_BYTES + SYNC_RUN_BYTES + SYNC_ID_DIGEST_BYTES
    );
    let data = 10;
    fill.fill.events.push(event(data));
    fill.fill.want.push(event(1).id);
    fill.missing.push(event(1).id);
    let loser = Loser {
        id: event(1).id,
        data: Bytes::from(vec![7; data as usize]),
    };
    if let Some(page) = &mut fill.fill.losers {
        page.losers.push(loser.clone());
    }
    assert_eq!(
        fill_len(&fill) - base.1,
        SYNC_EVENT_FRAMING_BYTES + 2 * SYNC_ID_BYTES + SYNC_LOSER_FRAMING_BYTES + 2 * data as usize
    );
    deliver.events.push(event(data));
    if let Some(page) = &mut deliver.losers {
        page.losers.push(loser);
    }
    assert_eq!(
        deliver_len(&deliver) - base.2,
        SYNC_EVENT_FRAMING_BYTES + SYNC_LOSER_FRAMING_BYTES + 2 * data as usize
    );
    // A version 2 fill of one event that asks nothing back.
    let one = FillRequest {
        fill: Fill {
            events: vec![event(data)],
            want: Vec::new(),
            losers: None,
            losers_wanted: None,
            ..fill.fill.clone()
        },
        missing: vec![event(data).id],
        ..fill
    };
    assert_eq!(
        encode_fill(&one, VERSION_OLDEST).len(),
        SYNC_V2_FILL_FRAMING_BYTES + data as usize
    );
}

#[test]
fn truncated_or_padded_messages_are_refused() {
    let (_, _, _, mut fill, _) = release_messages();
    fill.fill.losers = Some(LoserPage {
        after: None,
        losers: vec![Loser {
            id: event(2).id,
            data: Bytes::from_static(b"lost"),
        }],
        more: false,
    });
    let deliver = encode_deliver(
        &Deliver {
            events: vec![event(6)],
            complete: true,
            losers: None,
        },
        VERSION,
    );
    let fill = encode_fill(&fill, VERSION);
    type Refused = fn(&Bytes) -> bool;
    let checks: [(&Bytes, Refused); 2] = [
        (&deliver, |bytes| decode_deliver(bytes).is_err()),
        (&fill, |bytes| decode_fill(bytes).is_err()),
    ];
    for (message, refused) in checks {
        for cut in 0..message.len() {
            assert!(refused(&message.slice(..cut)), "cut at {cut}");
        }
        let mut padded = message.to_vec();
        padded.push(0);
        assert!(refused(&Bytes::from(padded)), "padded");
    }
    let huge_count = Bytes::from_static(&[VERSION, 0xff, 0xff, 0xff, 0xff]);
    assert!(decode_deliver(&huge_count).is_err());
}

#[test]
fn an_unknown_version_is_refused_with_the_version_spoken_here() {
    let message = Bytes::from_static(&[4, 0, 0, 0, 0, 1]);
    let error = decode_deliver(&message).expect_err("version 4 is unknown");
    assert_eq!(
        error.to_string(),
        "malformed sync message: version 4, this node speaks 3"
    );
    assert_eq!(version_refused(&error.to_string()), Some(3));
    // As the first release words it, inside its error answer.
    let released = r#"{"error":"invalid_event","message":"malformed sync message: version 3, this node speaks 2"}"#;
    assert_eq!(version_refused(released), Some(2));
    assert_eq!(version_refused("connection refused"), None);
}

/// Whether bytes decode as one kind of message.
type Decodes = fn(&Bytes) -> bool;

/// The decoder of each kind of message.
const DECODERS: [Decodes; 4] = [
    |bytes| decode_offer(bytes).is_ok(),
    |bytes| decode_reply(bytes).is_ok(),
    |bytes| decode_fill(bytes).is_ok(),
    |bytes| decode_deliver(bytes).is_ok(),
];

/// Messages of every kind in both versions, with every optional field
/// set in the current one, each with the decoder of its kind.
fn encoded_messages() -> Vec<(Bytes, Decodes)> {
    let (offer, offer_events, mut reply, mut fill, mut deliver) = release_messages();
    let [offers, replies, fills, delivers] = DECODERS;
    let mut messages = Vec::new();
    for version in [VERSION_OLDEST, VERSION] {
        messages.push((encode_offer(&offer, version), offers));
        messages.push((encode_offer(&offer_events, version), offers));
        messages.push((encode_reply(&reply, version), replies));
        messages.push((encode_fill(&fill, version), fills));
        messages.push((encode_deliver(&deliver, version), delivers));
    }
    let losers = LoserPage {
        after: Some(event(1).id),
        losers: vec![Loser {
            id: event(2).id,
            data: Bytes::from_static(b"lost"),
        }],
        more: true,
    };
    reply.losers_wanted = Some(Some(event(3).id));
    fill.fill.losers = Some(losers.clone());
    fill.fill.losers_wanted = Some(None);
    deliver.losers = Some(losers);
    let mut held = offer;
    held.push.held.push(Held {
        after_lc: 1,
        to_lc: 2,
        incarnation: 3,
        epoch: 4,
    });
    messages.push((encode_offer(&held, VERSION), offers));
    messages.push((encode_reply(&reply, VERSION), replies));
    messages.push((encode_fill(&fill, VERSION), fills));
    messages.push((encode_deliver(&deliver, VERSION), delivers));
    messages
}

proptest! {
    /// A message cut anywhere is refused, and no bytes (a cut message
    /// followed by noise) make a decoder panic.
    #[test]
    fn cut_messages_are_refused_and_no_bytes_make_a_decoder_panic(
        which in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let messages = encoded_messages();
        let (message, decodes) = &messages[which.index(messages.len())];
        prop_assert!(decodes(message), "the whole message decodes");
        let cut = message.slice(..cut.index(message.len()));
        prop_assert!(!decodes(&cut), "cut to {} of {} bytes", cut.len(), message.len());
        let mut noisy = cut.to_vec();
        noisy.extend_from_slice(&noise);
        let noisy = Bytes::from(noisy);
        for decode in DECODERS {
            decode(&noisy);
        }
    }
}
