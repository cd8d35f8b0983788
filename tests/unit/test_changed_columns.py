"""Updates that set indexed columns only when they changed (server/store/changed.py)."""

from jobplane.server.store.changed import ChangedColumns


def _cols():
    return ChangedColumns("task", ("reason",), ("state", "provider"), cap=2)


def test_an_unknown_row_is_set_whole_then_only_what_moved():
    c = _cols()
    assert c.updates([(1, ("r",), (2, "a"), False)]) == [
        ('UPDATE "task" SET "reason"=?, "state"=?, "provider"=? WHERE id=?', [("r", 2, "a", 1)])]
    assert c.updates([(1, ("r2",), (3, "a"), False)]) == [
        ('UPDATE "task" SET "reason"=?, "state"=? WHERE id=?', [("r2", 3, 1)])]
    assert c.updates([(1, ("r3",), (3, "a"), False)]) == [('UPDATE "task" SET "reason"=? WHERE id=?', [("r3", 1)])]


def test_rows_that_change_the_same_columns_share_a_statement():
    c = _cols()
    c.remember(1, (2, "a"))
    c.remember(2, (2, "b"))
    (sql, params), = c.updates([(1, ("x",), (3, "a"), False), (2, ("y",), (4, "b"), False)])
    assert sql == 'UPDATE "task" SET "reason"=?, "state"=? WHERE id=?' and params == [("x", 3, 1), ("y", 4, 2)]


def test_final_rows_forgotten_rows_and_the_oldest_past_the_cap_are_set_whole():
    c = _cols()
    c.remember(1, (2, "a"))
    c.updates([(1, ("x",), (5, "a"), True)])  # final: forgotten
    whole = 'UPDATE "task" SET "reason"=?, "state"=?, "provider"=? WHERE id=?'
    assert c.updates([(1, ("x",), (5, "a"), False)])[0][0] == whole
    c.remember(2, (1, "a"))
    c.remember(3, (1, "a"))  # over the cap of 2: row 1 is forgotten
    assert c.updates([(1, ("x",), (5, "a"), False)])[0][0] == whole
    c.forget_all()
    assert c.updates([(3, ("x",), (1, "a"), False)])[0][0] == whole
