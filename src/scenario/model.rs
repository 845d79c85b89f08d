//! The load-model rules, written once for the scenario's `[load]` keys and for the run flags: `users` and its
//! companions are the closed model, `rate` and its companions the open one. Each caller words the conflict
//! for its source (a key at its line, or a flag).

/// Which load keys (or flags) are given. For flags, `rate` means the open model was chosen (by `--rate`, or by
/// the scenario's `rate` when `--users` is not given).
#[derive(Debug, Default, Clone, Copy)]
pub struct LoadKeys {
    pub users: bool,
    pub rate: bool,
    pub spawn_rate: bool,
    pub iterations_per_user: bool,
    pub max_in_flight: bool,
}

/// The first rule a set of load keys breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelConflict {
    /// `users` (closed) and `rate` (open) together.
    UsersAndRate,
    /// `spawn_rate` paces the closed model's users; the open model starts at its rate.
    SpawnRateWithRate,
    /// `max_in_flight` bounds the open model only.
    MaxInFlightWithoutRate,
    /// `iterations_per_user` counts a closed-model user's iterations.
    IterationsPerUserWithRate,
}

impl LoadKeys {
    pub fn conflict(&self) -> Option<ModelConflict> {
        if self.rate {
            if self.users {
                return Some(ModelConflict::UsersAndRate);
            }
            if self.spawn_rate {
                return Some(ModelConflict::SpawnRateWithRate);
            }
        }
        if self.max_in_flight && !self.rate {
            return Some(ModelConflict::MaxInFlightWithoutRate);
        }
        if self.iterations_per_user && self.rate {
            return Some(ModelConflict::IterationsPerUserWithRate);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_belongs_to_one_model() {
        let k = |users, rate, spawn_rate, iterations_per_user, max_in_flight| {
            LoadKeys { users, rate, spawn_rate, iterations_per_user, max_in_flight }.conflict()
        };
        assert_eq!(k(true, false, true, true, false), None);
        assert_eq!(k(false, true, false, false, true), None);
        assert_eq!(k(true, true, false, false, false), Some(ModelConflict::UsersAndRate));
        assert_eq!(k(false, true, true, true, false), Some(ModelConflict::SpawnRateWithRate));
        assert_eq!(k(true, false, false, false, true), Some(ModelConflict::MaxInFlightWithoutRate));
        assert_eq!(k(false, true, false, true, false), Some(ModelConflict::IterationsPerUserWithRate));
    }
}
