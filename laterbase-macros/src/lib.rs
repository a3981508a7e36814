//! The `#[view]` attribute of Laterbase: it turns a struct into a view that
//! every node built into the same binary serves.
//!
//! The pipeline follows serde's derive: [`ast`] parses the attribute and the
//! struct into a model that keeps each token for its span, [`check`] applies
//! one function per rule and reports every mistake at once, and [`expand`]
//! writes the code, which names only `::laterbase::__private` paths.
//! Use it through `laterbase::view`, whose documentation has examples.

mod ast;
mod check;
mod expand;

use proc_macro::TokenStream;

/// Declares a view; see `laterbase::view`.
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
