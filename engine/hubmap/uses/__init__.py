"""The use-cases behind the commands, one module each, doing only I/O and orchestration:
`validate`, `test`, `plan`, `run` (with `contacts` and `forms`, the two ways a run sends),
`replay`, `status`, `apply`, `serve`, `sandbox`; `context` opens what they share (the state, a
HubSpot connection or the embedded stand-in) and `summary` is what a run reports.  Each returns an
`Outcome` (`hubmap.uses.outcome`) carrying its exit class; the decisions they act on are pure
(`hubmap.sync`, `hubmap.fold`, `hubmap.versions`, `hubmap.plan`).
"""
