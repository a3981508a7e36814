//! The sync protocol against a model: nodes with in-memory logs, driven
//! through rounds with no runtime, disk or socket.
//!
//! ```text
//! node.rs      ModelNode: one node's copy of a database, its links and
//!              recalls; merges as a commit does, reads as the storage does
//! network.rs   the steps of a round as the driver runs them, through the
//!              wire and `fit`; faults; the effects applied as a database
//!              applies them; the checks every honest message meets
//! liars.rs     messages forged in another node's name
//! random.rs    the randomised run: writes, rounds, faults, restarts,
//!              wipes, restores and liars, within drawn byte budgets
//! pages.rs     fits.rs  cursors.rs  lists.rs  hostile.rs: the named rules
//! ```
//!
//! To test a new rule: make `ModelNode`s and write to them, run `round` or
//! `until_quiet` between them, or step a round yourself (`offer`,
//! `answer_offer`, `fill`, `answer_fill`, `finish`) and bend or hold back a
//! message in between; then assert on the nodes' logs, links (`cursor_into`)
//! and conflicts. Add the rule below with its test.
//!
//! # The rules, and the tests that cover them
//!
//! Every rule is also exercised by `random::every_node_ends_with_the_settled_union`,
//! which checks every honest page, fill and deliver against its bounds, that
//! no cursor passes an event its node lacks after every step, and that the
//! nodes converge; it asserts that its drawn budgets cut pages, fills and
//! delivers many times.
//!
//! What a node sends, within byte bounds:
//! - A page holds at most its bytes of data or one event alone, its new and
//!   rewritten events sharing one budget, around held runs; it is never
//!   empty while the log goes on, and says more exactly when it does:
//!   `pages::a_page_past_its_budget_holds_one_event_alone`,
//!   `pages::new_and_rewritten_events_share_one_budget_and_the_pages_chain`.
//! - The log is read within those bounds as the storage reads it
//!   (`scan_log`, `PageBytes`, `LoserPager`):
//!   `pages::the_model_reads_its_log_as_the_storage_does`.
//! - A page of a list of losers holds whole ids, its first id whatever it
//!   holds: `pages::a_list_of_one_id_is_read_whole_however_small_the_page`.
//! - The events of a fill or a deliver stay within a page's bounds; one
//!   rewritten larger since its page was read goes in a later round, the
//!   fill saying it is not complete:
//!   `fits::an_event_rewritten_larger_since_its_page_goes_in_a_later_round`.
//! - A fill is cut to what its peer reads (`fit::fill_within`), its list
//!   first, then its last events: `fit::tests::a_fill_too_large_for_its_peer_defers_its_list_then_its_last_events`,
//!   `fits::a_fill_cut_to_its_peer_moves_no_cursor_and_the_next_rounds_send_the_rest`.
//! - A deliver likewise (`fit::deliver_within`):
//!   `fits::a_deliver_too_large_for_its_peer_defers_its_list_then_its_last_events`,
//!   `fits::a_deliver_cut_to_its_peer_moves_no_cursor_until_every_asked_for_event_came`.
//! - What a peer reads depends on its wire version
//!   (`fit::peer_body_bytes_max`): `fits::a_peer_of_the_first_release_is_sent_fills_within_its_smaller_body`.
//! - An event too large for a first-release peer is left out of pushes to
//!   it (`LeftOut`), the page covering it, and the peer pulls it:
//!   `fits::a_push_leaves_out_what_the_peer_cannot_take_and_covers_it`,
//!   `fits::a_first_release_peer_pulls_what_pushes_to_it_leave_out`.
//! - An event that came from a peer is named in a held run rather than
//!   offered back, only to the peer's current epoch:
//!   `pages::events_that_came_from_a_peer_are_not_offered_back_to_it`.
//!
//! Contiguity, and where cursors stand:
//! - A page carries exactly the entries it spans: the `check_page` tests
//!   below, and the liars `PushEnd` and `ReplyEnd` of the randomised run.
//! - A cursor moves only over what was merged, with the merge: the
//!   randomised run's `assert_cursors_sound`,
//!   `cursors::a_round_whose_last_message_is_lost_moves_no_cursor_of_the_initiator`,
//!   `fits::a_deliver_cut_to_its_peer_moves_no_cursor_until_every_asked_for_event_came`.
//! - A fill that is not complete does not move the responder's cursor:
//!   `fits::a_fill_cut_to_its_peer_moves_no_cursor_and_the_next_rounds_send_the_rest`,
//!   `fits::an_event_rewritten_larger_since_its_page_goes_in_a_later_round`.
//! - A fill is held to what its responder remembers of its reply: merged
//!   but moving no cursor when it remembers nothing, nor when its cursor
//!   changed since, nor past the page it checked:
//!   `cursors::a_fill_its_responder_does_not_remember_merges_and_moves_no_cursor`,
//!   `cursors::a_fill_is_held_to_the_cursor_stored_when_its_offer_was_checked`,
//!   `hostile::a_fill_is_held_to_the_offer_it_answers`, and the liar
//!   `FillEnd`.
//! - The merge rule (`merge::settle`) keeps the same form whatever the
//!   order: `cursors::the_merge_rule_keeps_the_same_form_whichever_came_first`.
//! - A cursor never moves back within an epoch (`merge::furthest`):
//!   `cursors::a_cursor_never_moves_back_within_an_epoch`.
//! - A cursor into a restored epoch is cut back to where the backup ends;
//!   one into an unknown epoch, another incarnation or past the head starts
//!   over (`resume`): `cursors::a_cursor_into_a_restored_log_is_cut_back_to_the_backup`,
//!   `cursors::a_restored_peer_is_sent_what_it_lost_though_it_had_sent_it`,
//!   `cursors::a_wiped_peer_is_pulled_from_nothing_and_sent_everything`.
//!
//! What a node keeps of conflicts:
//! - Lists of losers are exchanged within rounds, both ways:
//!   `lists::a_node_that_is_only_dialled_lists_the_losers_of_its_callers`.
//! - A page of a list per round, going on where the last ended:
//!   `lists::a_list_longer_than_a_page_is_read_a_page_per_round`.
//! - A count that moved while a read was under way starts another read
//!   (`LoserScan`): `lists::a_loser_listed_behind_a_read_under_way_is_read_again`.
//! - A first-release peer's list adds a loser only under the same kept
//!   value, and only a lost value larger than the kept one
//!   (`merge::listed_losers`):
//!   `lists::a_first_release_peers_list_adds_only_losers_under_the_same_kept_value`.
//!
//! What a node refuses (each refused whole, with its reason, nothing of it
//! stored; an offer refused without the responder's log is refused before
//! its database would be created):
//! - `check_summary`: `hostile::check_summary_refuses_epochs_out_of_order_or_past_the_head`.
//! - `check_page` of a pushed page, and `check_offer`:
//!   `hostile::check_page_refuses_a_pushed_page_outside_its_senders_current_epoch`,
//!   `hostile::check_page_refuses_a_pushed_page_that_does_not_carry_what_it_spans`.
//! - `check_offer_events`: `hostile::check_offer_events_refuses_more_events_than_a_page_holds`.
//! - `check_page` of a replied page:
//!   `hostile::check_page_refuses_a_replied_page_that_does_not_answer_the_cursor_asked`.
//! - `check_cursor_into`: `hostile::check_cursor_into_refuses_a_cursor_that_is_no_position_in_this_log`.
//! - A refused reply changes nothing the initiator remembers either (the
//!   responder's epoch its page names is learnt only once it passed):
//!   `hostile::a_refused_reply_changes_nothing_the_initiator_remembers_of_its_peer`.
//! - Forged heads, page ends, held runs and cursors amid honest rounds:
//!   the liars of `random::every_node_ends_with_the_settled_union`.
//!
//! Left to other tests: the hold on pushes to a peer that pulls in bulk,
//! which reads the clock (`sync::no_push_to_a_peer_that_pulls_the_same_events_in_bulk`
//! in `tests/laterbase`); the bounds of what a node remembers
//! (`recall::tests`); the values a merge skips as no read could serve them
//! (`values::a_peer_s_values_no_read_could_serve_are_skipped_and_the_rest_stored`);
//! a refused offer creating no database
//! (`errors::a_refused_offer_for_an_unknown_database_creates_nothing`); and
//! the first release's own messages (`wire::tests`).

mod cursors;
mod fits;
mod hostile;
mod liars;
mod lists;
mod network;
mod node;
mod pages;
mod random;
