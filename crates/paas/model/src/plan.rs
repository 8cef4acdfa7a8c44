pub fn plan() {}
