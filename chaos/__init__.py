"""Faults and changes under load, proven by a verifier (`notipipe chaos`).

- `ledger.py`: the known ledger (users, preferences, events) and the arrivals the rules expect;
- `load.py`: the ledger offered at a steady rate through the SDK;
- `verdict.py`: what arrived, checked against what must (pure);
- `observe.py`: reading back the topics, PostgreSQL and the gateway;
- `pipeline.py`, `workers.py`: a pipeline and worker group of the run's own on the local stack;
- `verifier.py`: one scenario's run, from the preferences to the verdict;
- `scenarios.py`: the faults and changes; `report.py`, `cli.py`: the command.
"""
