//! The parsed model of one `#[view]`: its arguments and its fields, each
//! with the tokens it came from, so that every error can point at its
//! token. Parsing rejects only what cannot be read at all; the rules live in
//! `check`.

use proc_macro2::{Span, TokenStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, ExprPath, Ident, Lit, LitStr, Meta, Path, Token, Type};

/// One `#[view]`, parsed.
pub struct Model {
    /// The struct, without its aggregator attributes.
    pub item: syn::ItemStruct,
    /// The attribute's tokens and the struct's without its doc comments,
    /// for the fingerprint: what the fold depends on, not what documents it.
    pub source: String,
    pub db: Option<LitStr>,
    pub event: Option<Path>,
    pub key: Option<Ident>,
    pub name: Option<LitStr>,
    pub fold: Option<Path>,
    /// `version = N`: a number the user bumps when the fold's meaning
    /// changes in code the macro cannot see (a fold function's body, the
    /// event type); it is part of the fingerprint.
    pub version: Option<syn::LitInt>,
    pub fields: Vec<Field>,
    /// Mistakes found while reading, reported with those of `check`.
    pub errors: Vec<syn::Error>,
}

/// A field of the struct and the aggregators on it.
pub struct Field {
    pub ident: Ident,
    pub ty: Type,
    pub aggregators: Vec<Aggregator>,
    /// Attributes that name no aggregator.
    pub unknown: Vec<Path>,
}

/// One aggregator attribute, as written.
pub struct Aggregator {
    pub kind: Kind,
    /// The attribute's name, where errors about it point.
    pub path: Path,
    /// The event field it reads, if it names one.
    pub field: Option<Ident>,
    /// Whatever else its parentheses held, if anything.
    pub extra: Option<Span>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Count,
    Sum,
    Min,
    Max,
    First,
    Last,
}

impl Kind {
    pub const NAMES: &'static str = "count, sum, min, max, first, last";

    fn of(path: &Path) -> Option<Kind> {
        let ident = path.get_ident()?;
        Some(match ident.to_string().as_str() {
            "count" => Kind::Count,
            "sum" => Kind::Sum,
            "min" => Kind::Min,
            "max" => Kind::Max,
            "first" => Kind::First,
            "last" => Kind::Last,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Count => "count",
            Kind::Sum => "sum",
            Kind::Min => "min",
            Kind::Max => "max",
            Kind::First => "first",
            Kind::Last => "last",
        }
    }
}

/// Attributes a field may carry besides aggregators.
const PASSTHROUGH: &[&str] = &["doc", "allow", "expect", "warn", "deny", "cfg", "serde"];

/// Reads the attribute's arguments and the struct.
pub fn parse(args: TokenStream, item: TokenStream) -> syn::Result<Model> {
    let mut item: syn::ItemStruct = syn::parse2(item)?;
    let source = format!("{args} {}", undocumented(&item));
    let mut model = Model {
        item: item.clone(),
        source,
        db: None,
        event: None,
        key: None,
        name: None,
        fold: None,
        version: None,
        fields: Vec::new(),
        errors: Vec::new(),
    };
    let parser = Punctuated::<Meta, Token![,]>::parse_terminated;
    match syn::parse::Parser::parse2(parser, args) {
        Ok(metas) => {
            for meta in metas {
                argument(&mut model, meta);
            }
        }
        Err(error) => model.errors.push(error),
    }
    for field in item.fields.iter_mut() {
        let Some(ident) = field.ident.clone() else {
            continue;
        };
        let (aggregators, unknown) = aggregators(&mut model.errors, &mut field.attrs);
        model.fields.push(Field {
            ident,
            ty: field.ty.clone(),
            aggregators,
            unknown,
        });
    }
    model.item = item;
    Ok(model)
}

/// The struct's tokens without `#[doc]` attributes (doc comments), on the
/// struct and on its fields, and without a trailing comma after the last
/// field.
fn undocumented(item: &syn::ItemStruct) -> TokenStream {
    let mut item = item.clone();
    item.attrs.retain(|attr| !attr.path().is_ident("doc"));
    if let syn::Fields::Named(fields) = &mut item.fields {
        fields.named.pop_punct();
    }
    for field in item.fields.iter_mut() {
        field.attrs.retain(|attr| !attr.path().is_ident("doc"));
    }
    quote::quote!(#item)
}

fn argument(model: &mut Model, meta: Meta) {
    let Meta::NameValue(pair) = meta else {
        model.errors.push(syn::Error::new(
            meta.span(),
            "expected `name = value`, as in `db = \"readings\"` or `event = Reading`",
        ));
        return;
    };
    let Some(name) = pair.path.get_ident().map(ToString::to_string) else {
        model.errors.push(unknown_argument(&pair.path));
        return;
    };
    let value = pair.value;
    let duplicate = match name.as_str() {
        "db" => model
            .db
            .replace(string(&mut model.errors, &value))
            .is_some(),
        "name" => model
            .name
            .replace(string(&mut model.errors, &value))
            .is_some(),
        "event" => model
            .event
            .replace(path(&mut model.errors, &value))
            .is_some(),
        "fold" => model
            .fold
            .replace(path(&mut model.errors, &value))
            .is_some(),
        "key" => {
            let key = path(&mut model.errors, &value);
            let ident = match key.get_ident() {
                Some(ident) => ident.clone(),
                None => {
                    model.errors.push(syn::Error::new(
                        key.span(),
                        "`key` names a field of the event, as in `key = sensor`",
                    ));
                    Ident::new("__invalid", key.span())
                }
            };
            model.key.replace(ident).is_some()
        }
        _ => {
            model.errors.push(unknown_argument(&pair.path));
            false
        }
    };
    if duplicate {
        model.errors.push(syn::Error::new(
            pair.path.span(),
            format!("`{name}` is given twice"),
        ));
    }
}

fn unknown_argument(path: &Path) -> syn::Error {
    syn::Error::new(
        path.span(),
        "unknown argument: `#[view]` takes `db`, `event`, `key`, `name`, `fold` and `version`",
    )
}

fn string(errors: &mut Vec<syn::Error>, value: &Expr) -> LitStr {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(text),
            ..
        }) => text.clone(),
        other => {
            errors.push(syn::Error::new(
                other.span(),
                "expected a string literal, as in `db = \"readings\"`",
            ));
            LitStr::new("", other.span())
        }
    }
}

fn path(errors: &mut Vec<syn::Error>, value: &Expr) -> Path {
    match value {
        Expr::Path(ExprPath { path, .. }) => path.clone(),
        other => {
            errors.push(syn::Error::new(
                other.span(),
                "expected a path, as in `event = Reading`",
            ));
            Path::from(Ident::new("__invalid", other.span()))
        }
    }
}

/// Takes the aggregator attributes off a field: those it knows, and the
/// names of those it does not (left for `check` to report).
fn aggregators(
    errors: &mut Vec<syn::Error>,
    attrs: &mut Vec<Attribute>,
) -> (Vec<Aggregator>, Vec<Path>) {
    let mut found = Vec::new();
    let mut unknown = Vec::new();
    attrs.retain(|attr| {
        let path = attr.path();
        if PASSTHROUGH.iter().any(|name| path.is_ident(name)) {
            return true;
        }
        let Some(kind) = Kind::of(path) else {
            unknown.push(path.clone());
            return false;
        };
        let (field, extra) = match &attr.meta {
            Meta::Path(_) => (None, None),
            Meta::List(list) => {
                match list.parse_args_with(Punctuated::<Ident, Token![,]>::parse_terminated) {
                    Ok(idents) => {
                        let mut idents = idents.into_iter();
                        let field = idents.next();
                        (field, idents.next().map(|extra| extra.span()))
                    }
                    Err(error) => {
                        errors.push(syn::Error::new(
                            error.span(),
                            format!(
                                "`#[{}(...)]` takes the name of one event field",
                                kind.name()
                            ),
                        ));
                        (None, None)
                    }
                }
            }
            Meta::NameValue(pair) => (None, Some(pair.value.span())),
        };
        found.push(Aggregator {
            kind,
            path: path.clone(),
            field,
            extra,
        });
        false
    });
    (found, unknown)
}
