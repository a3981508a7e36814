use laterbase::view;

#[view(key = sensor)]
struct Stats {
    #[count]
    readings: u64,
}

fn main() {}
