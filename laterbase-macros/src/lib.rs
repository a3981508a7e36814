//! The `#[view]` attribute of Laterbase: it turns a struct into a view that
//! every node built into the same binary serves.
//!
//! The pipeline follows serde's derive: [`ast`] parses the attribute and the
//! struct into a model that keeps each token for its span, [`check`] applies
//! one function per rule and reports every mistake at once, and [`expand`]
//! writes the code, which names only `::laterbase::__private` paths.
//! Use it through `laterbase::view`, whose documentation has examples.

// As in the library: no indexing or `expect` on what was not checked, and a
// case that cannot fail says why.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing))]

mod ast;
mod check;
mod expand;

use proc_macro::TokenStream;

/// Declares a view: a fold over one database's events, grouped by a key,
/// that every node built into the same binary serves and keeps current.
///
/// Arguments: `db = "name"` (the database), `event = Type` (what each
/// event's JSON decodes into, with serde), `key = field` (the event field
/// that groups rows: a string, an integer or a boolean; omit it for one
/// global row), `name = "..."` (the view's name in routes; by default the
/// struct's name in snake case), `fold = Type::function` for a custom
/// fold, and `version = N`, to bump when the fold's meaning changes in code
/// the macro cannot see (a fold function's body, the event type): a view
/// whose definition changes is rebuilt from the events.
///
/// Each field of a declarative view carries one aggregator: `#[count]`,
/// `#[sum(f)]`, `#[min(f)]`, `#[max(f)]`, `#[first(f)]` (the value of the
/// event with the smallest id) or `#[last(f)]`, where `f` is a field of the
/// event. Rows are served as JSON objects of the struct's fields. Every
/// aggregator gives a row that depends only on the set of its events, not
/// their order: `sum` adds up exactly (integers of up to 64 bits, floats)
/// and rounds once, to the field's type, when the row is shown; `min` and
/// `max` order floats totally (`-0.0` below `0.0`). An event whose
/// aggregated field is not a finite number is skipped and counted.
///
/// ```
/// use laterbase::{EventId, view};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Reading { sensor: String, celsius: f64 }
///
/// /// Temperature statistics per sensor.
/// #[view(db = "readings", event = Reading, key = sensor)]
/// struct SensorStats {
///     #[count]          readings: u64,
///     #[sum(celsius)]   total: f64,
///     #[min(celsius)]   coldest: f64,
///     #[max(celsius)]   hottest: f64,
///     #[first(celsius)] first: f64,
///     #[last(celsius)]  latest: f64,
/// }
///
/// let id = |ms| EventId::from_parts(ms, 0);
/// let rows = laterbase::testing::fold::<SensorStats>([
///     (id(2), Reading { sensor: "dock-1".into(), celsius: 6.0 }),
///     (id(1), Reading { sensor: "dock-1".into(), celsius: 4.5 }),
/// ]);
/// assert_eq!(rows[0].key, "dock-1");
/// assert_eq!(rows[0].value["first"], 4.5);
/// assert_eq!(rows[0].value["latest"], 6.0);
/// ```
///
/// A custom fold names a function `fn(&mut Self, EventId, &Event)`; the
/// struct is the row's state, so it derives `Default`, `Serialize` and
/// `Deserialize`. It sees each key's events in id order, also when one
/// arrives late, and must itself be deterministic: the same events in the
/// same order give the same state, on every node and after every rebuild
/// (no clock, no randomness, no `HashMap` iteration order in what it
/// computes). An event after which the state cannot be stored (a NaN or an
/// infinity, a `Serialize` that fails) is skipped and counted, and the state
/// stays as it was before it:
///
/// ```
/// use laterbase::{EventId, view};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize)]
/// struct Scan { parcel: u32, place: String }
///
/// #[view(db = "parcels", event = Scan, key = parcel, fold = Route::apply)]
/// #[derive(Default, Serialize, Deserialize)]
/// struct Route { places: Vec<String> }
///
/// impl Route {
///     fn apply(&mut self, _id: EventId, scan: &Scan) {
///         self.places.push(scan.place.clone());
///     }
/// }
///
/// let id = |ms| EventId::from_parts(ms, 0);
/// let rows = laterbase::testing::fold::<Route>([
///     (id(3), Scan { parcel: 7, place: "ship".into() }),
///     (id(1), Scan { parcel: 7, place: "farm gate".into() }),
/// ]);
/// assert_eq!(rows[0].value["places"], serde_json::json!(["farm gate", "ship"]));
/// ```
///
/// Mistakes are compile errors at their token, all of them at once: an
/// unknown aggregator or argument, a field the event lacks, a `sum` over a
/// type that cannot be summed, a missing `db` or `event`, generics.
///
/// ```compile_fail
/// use laterbase::view;
/// #[derive(serde::Deserialize)]
/// struct Reading { sensor: String }
///
/// #[view(db = "readings", event = Reading, key = sensor)]
/// struct Stats {
///     #[avg(sensor)] mean: f64, // error: unknown aggregator `avg`
/// }
/// ```
#[proc_macro_attribute]
pub fn view(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let item = proc_macro2::TokenStream::from(item);
    let model = match ast::parse(args, item) {
        Ok(model) => model,
        Err(error) => return error.to_compile_error().into(),
    };
    match check::all(&model) {
        Ok(()) => expand::view(&model).into(),
        // The struct stays, so that code naming it reports nothing more.
        Err(error) => {
            let item = &model.item;
            let error = error.to_compile_error();
            quote::quote!(#item #error).into()
        }
    }
}
