use laterbase::view;
use serde::Deserialize;

#[derive(Deserialize)]
struct Transfer {
    account: String,
    amount: u128,
}

// No exact total wider than 128 bits is kept: a sum of them could only
// saturate, which would depend on the order events arrive in.
#[view(db = "ledger", event = Transfer, key = account)]
struct Balances {
    #[sum(amount)]
    total: u128,
}

fn main() {}
