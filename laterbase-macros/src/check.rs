//! The rules of `#[view]`, one function each. Every mistake is collected and
//! all are reported together, each at its token. Mistakes only the compiler
//! can see (an event field that does not exist, a `sum` over text) are left
//! to it: the generated code puts their tokens' spans where it fails.

use proc_macro2::Span;
use syn::spanned::Spanned;

use crate::ast::{Kind, Model};

/// Applies every rule; the errors of all of them, combined.
pub fn all(model: &Model) -> syn::Result<()> {
    let mut errors: Vec<syn::Error> = model.errors.clone();
    no_generics(model, &mut errors);
    required_arguments(model, &mut errors);
    names(model, &mut errors);
    named_fields(model, &mut errors);
    aggregators(model, &mut errors);
    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(()),
        Some(mut first) => {
            for error in errors {
                first.combine(error);
            }
            Err(first)
        }
    }
}

fn no_generics(model: &Model, errors: &mut Vec<syn::Error>) {
    let generics = &model.item.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            generics.span(),
            "a view struct cannot have generic parameters: a node folds one concrete type",
        ));
    }
}

fn required_arguments(model: &Model, errors: &mut Vec<syn::Error>) {
    if model.db.is_none() {
        errors.push(syn::Error::new(
            Span::call_site(),
            "missing `db = \"...\"`: the database the view folds",
        ));
    }
    if model.event.is_none() {
        errors.push(syn::Error::new(
            Span::call_site(),
            "missing `event = Type`: the type each event's JSON decodes into",
        ));
    }
}

/// Database and view names follow the API's rule, `^[a-z][a-z0-9_-]{0,63}$`.
fn names(model: &Model, errors: &mut Vec<syn::Error>) {
    if let Some(db) = &model.db
        && !db.value().is_empty()
        && let Err(reason) = valid_name(&db.value())
    {
        errors.push(syn::Error::new(
            db.span(),
            format!("invalid database name: {reason}"),
        ));
    }
    if let Some(db) = &model.db
        && db.value() == "db"
    {
        errors.push(syn::Error::new(
            db.span(),
            "the database name `db` is reserved",
        ));
    }
    if let Some(name) = &model.name
        && let Err(reason) = valid_name(&name.value())
    {
        errors.push(syn::Error::new(
            name.span(),
            format!("invalid view name: {reason}"),
        ));
    }
}

pub fn valid_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("it is empty"),
        Some(first) if !first.is_ascii_lowercase() => {
            return Err("it must start with a lower-case letter");
        }
        Some(_) => {}
    }
    if name.len() > 64 {
        return Err("it is longer than 64 characters");
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') {
        return Err("it may hold only a-z, 0-9, `_` and `-`");
    }
    Ok(())
}

fn named_fields(model: &Model, errors: &mut Vec<syn::Error>) {
    match &model.item.fields {
        syn::Fields::Named(_) => {}
        syn::Fields::Unit if model.fold.is_some() => {}
        other => errors.push(syn::Error::new(
            if matches!(other, syn::Fields::Unit) {
                model.item.ident.span()
            } else {
                other.span()
            },
            "a view struct has named fields, one per aggregator",
        )),
    }
}

fn aggregators(model: &Model, errors: &mut Vec<syn::Error>) {
    for field in &model.fields {
        for path in &field.unknown {
            errors.push(syn::Error::new(
                path.span(),
                format!(
                    "unknown aggregator `{}`: expected one of {}",
                    quote::quote!(#path).to_string().replace(' ', ""),
                    Kind::NAMES
                ),
            ));
        }
        if model.fold.is_some() {
            for aggregator in &field.aggregators {
                errors.push(syn::Error::new(
                    aggregator.path.span(),
                    "a view with `fold = ...` folds with its function: its fields take no aggregators",
                ));
            }
            continue;
        }
        if field.aggregators.is_empty() && field.unknown.is_empty() {
            errors.push(syn::Error::new(
                field.ident.span(),
                format!(
                    "field `{}` has no aggregator: mark it with one of {}",
                    field.ident,
                    Kind::NAMES
                ),
            ));
        }
        for extra in field.aggregators.iter().skip(1) {
            errors.push(syn::Error::new(
                extra.path.span(),
                "a field takes one aggregator",
            ));
        }
        for aggregator in &field.aggregators {
            let name = aggregator.kind.name();
            if let Some(span) = aggregator.extra {
                errors.push(syn::Error::new(
                    span,
                    format!("`#[{name}]` takes one event field"),
                ));
            }
            match (aggregator.kind, &aggregator.field) {
                (Kind::Count, Some(field)) => errors.push(syn::Error::new(
                    field.span(),
                    "`#[count]` counts events and takes no field",
                )),
                (Kind::Count, None) => {}
                (_, None) if aggregator.extra.is_none() => errors.push(syn::Error::new(
                    aggregator.path.span(),
                    format!(
                        "`#[{name}]` needs the event field it reads, as in `#[{name}(celsius)]`"
                    ),
                )),
                _ => {}
            }
        }
    }
}
