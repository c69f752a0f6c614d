"""The columns an audit row is first read by, said once for the console and the CSV export."""

from __future__ import annotations

# When, what was done to which object, by whom and from where: the console's list of audit
# rows shows these, and the CSV export starts with them.
AUDIT_ROW_COLUMNS = (
    "created_at",
    "action_type",
    "object_type",
    "object_id",
    "user",
    "ip_address",
    "device_id",
)
