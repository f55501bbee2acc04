//! What a test records: one [`Operation`] per client call, with its invocation and completion times and what came
//! back.

/// A call a client made on one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// Write `value`.
    Put {
        /// The value written.
        value: String,
    },
    /// Read the key (linearizable).
    Get,
    /// Write `new` if the current value is `expected` (`None`: the key is absent), as one transaction.
    Cas {
        /// The value the key must hold.
        expected: Option<String>,
        /// The value written when it does.
        new: String,
    },
    /// Delete the key.
    Delete,
}

/// What a completed call answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The put committed.
    Put,
    /// The read saw this value (`None`: absent).
    Get(Option<String>),
    /// Whether the compare held and the write happened.
    Cas(bool),
    /// Whether a key was deleted.
    Delete(bool),
}

impl Outcome {
    /// Whether the call changed the store (and so took a revision of its own).
    pub fn wrote(&self) -> bool {
        match self {
            Outcome::Put => true,
            Outcome::Cas(succeeded) | Outcome::Delete(succeeded) => *succeeded,
            Outcome::Get(_) => false,
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Completion {
    /// It answered.
    Ok {
        /// What it answered.
        outcome: Outcome,
        /// The store's revision in the answer: the revision a write committed at, or the revision a read saw.
        revision: i64,
    },
    /// It was refused before it could take effect (no leader, invalid argument): it had no effect at all.
    Failed,
    /// It timed out or failed ambiguously: it may take effect, or not, at any time after its invocation.
    Unknown,
}

/// One call on one key, as a client saw it. Times are in any unit, from any origin, as long as every operation of a
/// history uses the same clock.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Operation {
    /// Who called (for messages only).
    pub client: usize,
    /// The key.
    pub key: String,
    /// The call.
    pub op: Op,
    /// When the call was made.
    pub invoked: u64,
    /// When the answer arrived (meaningless unless [`Completion::Ok`]).
    pub completed: u64,
    /// How it ended.
    pub completion: Completion,
}

impl Operation {
    /// A call that answered.
    pub fn ok(
        client: usize,
        key: &str,
        op: Op,
        (invoked, completed): (u64, u64),
        outcome: Outcome,
        revision: i64,
    ) -> Self {
        Self {
            client,
            key: key.to_string(),
            op,
            invoked,
            completed,
            completion: Completion::Ok { outcome, revision },
        }
    }

    /// A call whose effect is unknown.
    pub fn unknown(client: usize, key: &str, op: Op, invoked: u64) -> Self {
        Self {
            client,
            key: key.to_string(),
            op,
            invoked,
            completed: invoked,
            completion: Completion::Unknown,
        }
    }

    /// The answer, when there was one.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.completion {
            Completion::Ok { outcome, .. } => Some(outcome),
            _ => None,
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match &self.op {
            Op::Put { value } => format!("put({value})"),
            Op::Get => "get()".to_string(),
            Op::Cas { expected, new } => format!("cas({expected:?} -> {new})"),
            Op::Delete => "delete()".to_string(),
        };
        match &self.completion {
            Completion::Ok { outcome, revision } => write!(
                f,
                "client {} {} {op} [{}, {}] = {outcome:?} @{revision}",
                self.client, self.key, self.invoked, self.completed
            ),
            Completion::Failed => write!(
                f,
                "client {} {} {op} [{}, -] failed",
                self.client, self.key, self.invoked
            ),
            Completion::Unknown => write!(
                f,
                "client {} {} {op} [{}, ?] unknown",
                self.client, self.key, self.invoked
            ),
        }
    }
}
