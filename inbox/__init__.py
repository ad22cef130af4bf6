"""The inbox service: what lets an application show its users their in-app notifications.

`notipipe inbox serve` runs one instance (aiohttp). It reads and updates the PostgreSQL `inbox`
table the JDBC sink fills (`store.py`), pushes new in-app deliveries to the users' open
connections as Server-Sent Events (`feed.py`, `hub.py`), and takes delivery receipts from the
provider gateways onto the receipts topic (`receipts.py`). Users prove who they are with tokens the
app's backend issues (`tokens.py`); gateways sign their receipts (`signing.py`). docs/inbox.md
describes the API, the feed, the token scheme and the receipt webhook.
"""
