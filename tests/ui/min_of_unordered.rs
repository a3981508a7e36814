use laterbase::view;
use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, PartialOrd, Serialize, Deserialize)]
struct Grade(f64);

#[derive(Deserialize)]
struct Exam {
    student: String,
    grade: Grade,
}

// `PartialOrd` is not enough: the minimum would depend on arrival order.
#[view(db = "school", event = Exam, key = student)]
struct Lowest {
    #[min(grade)]
    lowest: Grade,
}

fn main() {}
