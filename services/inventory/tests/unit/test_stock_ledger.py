import pytest

from stock.models import AppendOnly, StockLedgerEntry


class TestLedgerIsAppendOnly:
    def test_a_saved_entry_cannot_be_saved_again(self):
        entry = StockLedgerEntry(product_id=1, kind="adjustment", delta_on_hand=1, reason="x")
        entry._state.adding = False  # as if loaded from the database
        with pytest.raises(AppendOnly):
            entry.save()

    def test_an_entry_cannot_be_deleted(self):
        with pytest.raises(AppendOnly):
            StockLedgerEntry(pk=1).delete()

    def test_bulk_update_and_delete_are_refused(self):
        with pytest.raises(AppendOnly):
            StockLedgerEntry.objects.filter(product_id=1).update(delta_on_hand=0)
        with pytest.raises(AppendOnly):
            StockLedgerEntry.objects.all().delete()
