"""`csr-signer local chaos` (`make chaos`): faults on the real control plane under load.

- `schedule`: the seeded, printed, replayable list of faults (pure);
- `requests`: request kinds, their bodies, and what policy must make of each (pure);
- `audit`: the final check of the apiserver's records against the CA and policy
  histories (pure);
- `cluster`: control plane + toxiproxy + two `csr-signer run` replicas, installed as
  an operator would;
- `load`: the steady CSR and PCR load from many requesters;
- `faults`: one method per fault kind, each undone in a `finally`;
- `toxiproxy`: the pinned toxiproxy build and its HTTP API;
- `run`: the whole run, the report and the last line.

docs/chaos.md has the fault table and how to replay a seed.
"""
