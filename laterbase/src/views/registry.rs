//! The registry of every view compiled into the binary, as `#[view]`
//! registers them at build time.

use std::fmt;

use super::fold;
use super::view::View;

/// A view compiled into the binary, as `#[view]` registers it.
#[derive(Clone, Copy)]
pub struct Registration {
    /// The database it folds.
    pub db: &'static str,
    /// Its name.
    pub name: &'static str,
    /// The struct's path, to name it in errors.
    pub type_name: &'static str,
    pub(crate) engine: fn() -> Box<dyn fold::Engine>,
}

impl Registration {
    /// The registration of `V`, named `type_name` in errors.
    pub const fn of<V: View>(type_name: &'static str) -> Registration {
        Registration {
            db: V::DB,
            name: V::NAME,
            type_name,
            engine: fold::engine::<V>,
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("db", &self.db)
            .field("name", &self.name)
            .field("type_name", &self.type_name)
            .finish()
    }
}

inventory::collect!(Registration);

/// Every view compiled into this binary, sorted by database and name.
/// Fails naming both structs when two views of one database share a name.
pub fn registered() -> crate::error::Result<Vec<Registration>> {
    let mut views: Vec<Registration> = inventory::iter::<Registration>
        .into_iter()
        .copied()
        .collect();
    views.sort_by(|a, b| (a.db, a.name, a.type_name).cmp(&(b.db, b.name, b.type_name)));
    for pair in views.windows(2) {
        if let [first, second] = pair
            && first.db == second.db
            && first.name == second.name
        {
            return Err(crate::error::Error::DuplicateView {
                db: first.db.to_owned(),
                view: first.name.to_owned(),
                first: first.type_name.to_owned(),
                second: second.type_name.to_owned(),
            });
        }
    }
    Ok(views)
}
