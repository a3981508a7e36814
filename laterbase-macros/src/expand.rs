//! The code of one checked `#[view]`: the struct as written (without its
//! aggregator attributes), then, inside `const _: () = { ... };`, the
//! state a row keeps, the `View` implementation and the registration.
//! Every path is `::laterbase::__private`; an expression that reads an
//! event field carries that field's token span, so that the compiler's
//! errors point at the attribute.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ast::{Aggregator, Kind, Model};

/// The code for `model`, which `check` passed.
#[expect(
    clippy::expect_used,
    reason = "`check` refused a model without `db` or `event` before expansion"
)]
pub fn view(model: &Model) -> TokenStream {
    let item = &model.item;
    let ident = &item.ident;
    let event = model.event.as_ref().expect("checked: `event` is given");
    let db = model.db.as_ref().expect("checked: `db` is given");
    let name = match &model.name {
        Some(name) => name.value(),
        None => snake_case(&ident.to_string()),
    };
    let fingerprint = fingerprint(model);
    let (key_kind, key) = key(model, event);
    let body = match &model.fold {
        Some(fold) => custom(model, fold),
        None => declarative(model),
    };
    let Body {
        state_item,
        state,
        ordered,
        fold,
        value,
    } = body;
    let type_name = ident.to_string();
    quote! {
        #[allow(dead_code, reason = "a view struct names a view; its rows are JSON")]
        #item

        const _: () = {
            #state_item

            #[automatically_derived]
            impl ::laterbase::__private::View for #ident {
                const DB: &'static str = #db;
                const NAME: &'static str = #name;
                const FINGERPRINT: u64 = #fingerprint;
                const ORDERED: bool = #ordered;
                type Event = #event;
                type State = #state;

                fn key_kind() -> ::laterbase::__private::KeyKind {
                    #key_kind
                }

                fn key(event: &#event) -> ::laterbase::__private::Key {
                    #key
                }

                fn fold(
                    state: &mut #state,
                    id: ::laterbase::__private::EventId,
                    event: &#event,
                ) -> ::core::result::Result<(), ::laterbase::__private::FoldError> {
                    #fold
                }

                fn value(state: &#state) -> ::laterbase::__private::serde_json::Value {
                    #value
                }
            }

            ::laterbase::__private::inventory::submit! {
                ::laterbase::__private::Registration::of::<#ident>(
                    ::core::concat!(::core::module_path!(), "::", #type_name)
                )
            }
        };
    }
}

struct Body {
    state_item: TokenStream,
    state: TokenStream,
    ordered: bool,
    fold: TokenStream,
    value: TokenStream,
}

/// How the key is read from an event, and its kind.
fn key(model: &Model, event: &syn::Path) -> (TokenStream, TokenStream) {
    match &model.key {
        Some(field) => {
            let at = located(field.span());
            (
                quote_spanned! {at=>
                    ::laterbase::__private::key_kind_of::<#event, _>(|event| &event.#field)
                },
                quote_spanned! {at=> ::laterbase::__private::key_of(&event.#field) },
            )
        }
        None => (
            quote! { ::laterbase::__private::KeyKind::Null },
            quote! {
                let _ = event;
                ::laterbase::__private::Key::Null
            },
        ),
    }
}

/// A view with `fold = path`: the struct is its own state, folded by the
/// user's function in id order.
fn custom(model: &Model, fold: &syn::Path) -> Body {
    let ident = &model.item.ident;
    Body {
        state_item: TokenStream::new(),
        state: quote!(#ident),
        ordered: true,
        fold: quote! {
            #fold(state, id, event);
            ::core::result::Result::Ok(())
        },
        value: quote! { ::laterbase::__private::json(state) },
    }
}

/// A view of aggregator fields: a hidden state struct with one slot per
/// field, folded in arrival order. Every slot is exact (`sum` keeps an
/// exact total, `min` and `max` a total order, `first` and `last` the id
/// they came from), so a row depends on the set of its events only. Every
/// field an aggregator reads is checked to be finite before any slot
/// changes, so an event folds whole or not at all.
fn declarative(model: &Model) -> Body {
    let state_ident = format_ident!("__{}State", model.item.ident);
    let mut slots = Vec::new();
    let mut checks = Vec::new();
    let mut folds = Vec::new();
    let mut values = Vec::new();
    for field in &model.fields {
        let Some(aggregator) = field.aggregators.first() else {
            continue;
        };
        let slot = &field.ident;
        let ty = &field.ty;
        let label = slot.to_string();
        if let Some(field) = &aggregator.field {
            let at = located(field.span());
            checks.push(quote_spanned! {at=> ::laterbase::__private::finite(&event.#field)?; });
        }
        let (slot_ty, fold, value) = aggregate(aggregator, slot, ty);
        slots.push(quote! { #slot: #slot_ty });
        folds.push(fold);
        values.push(quote! { map.insert(::std::string::String::from(#label), #value); });
    }
    let count = values.len();
    Body {
        state_item: quote! {
            #[derive(
                ::laterbase::__private::serde::Serialize,
                ::laterbase::__private::serde::Deserialize,
                ::core::default::Default,
            )]
            #[serde(crate = "::laterbase::__private::serde")]
            pub struct #state_ident { #(#slots,)* }
        },
        state: quote!(#state_ident),
        ordered: false,
        fold: quote! {
            let _ = id;
            #(#checks)*
            #(#folds)*
            ::core::result::Result::Ok(())
        },
        value: quote! {
            let mut map = ::laterbase::__private::serde_json::Map::with_capacity(#count);
            #(#values)*
            ::laterbase::__private::serde_json::Value::Object(map)
        },
    }
}

/// One field's slot type, fold statement and value expression.
fn aggregate(
    aggregator: &Aggregator,
    slot: &syn::Ident,
    ty: &syn::Type,
) -> (TokenStream, TokenStream, TokenStream) {
    let private = quote!(::laterbase::__private);
    // Statements that read a field sit at its token, so that the compiler's
    // errors point there, but resolve names as the generated code's own:
    // `state`, `event` and `id` are this code's locals wherever the
    // attribute came from.
    if aggregator.kind == Kind::Count {
        let at = located(aggregator.path.span());
        return (
            quote!(#ty),
            quote_spanned! {at=> ::laterbase::__private::count(&mut state.#slot); },
            quote! { #private::json(&state.#slot) },
        );
    }
    #[expect(
        clippy::expect_used,
        reason = "`check` refused an aggregator other than `count` without a field"
    )]
    let field = aggregator
        .field
        .as_ref()
        .expect("checked: the aggregator names a field");
    let at = located(field.span());
    let name = format_ident!("{}", aggregator.kind.name());
    match aggregator.kind {
        Kind::Count => unreachable!("count returned above"),
        Kind::Sum => (
            quote!(#private::ExactSum),
            quote_spanned! {at=> ::laterbase::__private::sum::<#ty>(&mut state.#slot, &event.#field); },
            {
                let at = located(ty.span());
                quote_spanned! {at=> ::laterbase::__private::sum_value::<#ty>(&state.#slot) }
            },
        ),
        Kind::Min | Kind::Max => (
            quote!(::core::option::Option<#ty>),
            quote_spanned! {at=> ::laterbase::__private::#name(&mut state.#slot, &event.#field); },
            quote! { #private::json(&state.#slot) },
        ),
        Kind::First | Kind::Last => (
            quote!(::core::option::Option<(#private::EventId, #ty)>),
            quote_spanned! {at=> ::laterbase::__private::#name(&mut state.#slot, id, &event.#field); },
            quote! { #private::slot_value(&state.#slot) },
        ),
    }
}

/// The location of a user's token, resolving names as generated code does.
fn located(span: proc_macro2::Span) -> proc_macro2::Span {
    span.resolved_at(proc_macro2::Span::call_site())
}

/// `SensorStats` → `sensor_stats`.
fn snake_case(name: &str) -> String {
    let mut snake = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if previous_lower {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else {
            snake.push(c);
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    snake
}

/// The view's definition hash: its tokens without doc comments, and
/// `version = N`. The source includes the version; it is mixed in on its
/// own too, so that a bump changes the fingerprint however the text hashes.
fn fingerprint(model: &Model) -> u64 {
    let version: u64 = model
        .version
        .as_ref()
        .and_then(|version| version.base10_parse().ok())
        .unwrap_or(0);
    fnv1a(model.source.as_bytes()) ^ version.rotate_left(32)
}

/// A stable 64-bit hash of the view's definition (FNV-1a).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::{fingerprint, snake_case};
    use quote::quote;

    fn of(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> u64 {
        fingerprint(&crate::ast::parse(args, item).expect("parses"))
    }

    #[test]
    fn only_what_changes_the_fold_changes_the_fingerprint() {
        let args = quote!(db = "readings", event = Reading, key = sensor);
        let plain = of(
            args.clone(),
            quote!(
                struct Stats {
                    #[sum(celsius)]
                    total: f64,
                }
            ),
        );
        let documented = of(
            args.clone(),
            quote!(
                /// Totals per sensor.
                struct Stats {
                    /// Degrees, added up.
                    #[sum(celsius)]
                    total: f64,
                }
            ),
        );
        assert_eq!(plain, documented, "doc comments do not change the fold");
        let other = of(
            args.clone(),
            quote!(
                struct Stats {
                    #[max(celsius)]
                    total: f64,
                }
            ),
        );
        assert_ne!(plain, other, "another aggregator folds otherwise");
        let versioned = of(
            quote!(db = "readings", event = Reading, key = sensor, version = 2),
            quote!(
                struct Stats {
                    #[sum(celsius)]
                    total: f64,
                }
            ),
        );
        assert_ne!(plain, versioned, "a version bump rebuilds");
    }

    #[test]
    fn struct_names_become_snake_case() {
        assert_eq!(snake_case("SensorStats"), "sensor_stats");
        assert_eq!(snake_case("Shipment"), "shipment");
        assert_eq!(snake_case("Dock2Totals"), "dock2_totals");
    }
}
