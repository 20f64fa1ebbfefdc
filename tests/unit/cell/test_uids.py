"""Call uids: a cell's worker names itself in them; a single process's uids stay as they were."""

from sipbridge.cell.uids import new_uid, worker_of


def test_single_process_uid_keeps_its_form_and_names_no_worker():
    """Without a worker index a uid is c_<16 hex> and routes to no worker."""
    uid = new_uid()
    assert uid.startswith("c_") and len(uid) == 18 and int(uid[2:], 16) >= 0
    assert worker_of(uid) is None


def test_cell_uid_routes_back_to_its_worker():
    """A uid made by worker 2 (or 0, or 13) names that worker."""
    for index in (0, 2, 13):
        uid = new_uid(index)
        assert uid.startswith(f"c_{index}_") and worker_of(uid) == index


def test_uids_that_name_no_worker():
    """Malformed, foreign or non-string uids route nowhere (the cell API answers 404)."""
    for uid in ("c_1_xyz", "c_1_" + "0" * 15, "c_x_" + "0" * 16, "c__" + "0" * 16,
                "d_1_" + "0" * 16, "c_1_" + "0" * 16 + "/x", "", None, 5, "c_99999_" + "0" * 16):
        assert worker_of(uid) is None, uid


def test_uid_uses_the_random_source_given():
    """The hex part comes from the injected source (8 bytes)."""
    assert new_uid(1, token_hex=lambda n: "ab" * n) == "c_1_" + "ab" * 8
