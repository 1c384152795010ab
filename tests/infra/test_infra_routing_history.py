"""The routing history in the template: its buckets expire by the metadata table's TTL, and
the two functions that write them can write the metadata table's items they update today."""

from __future__ import annotations

import pytest
from synthesized_app import SynthesizedApp

from mlops_core.storage import keys

pytestmark = pytest.mark.infra


def test_the_metadata_table_expires_items_by_the_routing_historys_ttl_attribute(
    synthesized: SynthesizedApp,
) -> None:
    table = synthesized.resources[synthesized.logical_id(synthesized.stack.storage.metadata_table)]
    properties = table["Properties"]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": keys.EXPIRES_AT, "Enabled": True}
    assert properties["DeletionProtectionEnabled"] is True  # TTL deletes expired buckets, nothing else
