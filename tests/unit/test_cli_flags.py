"""The CLI names the flag a user typed where the server names the request field it refused, and
leaves the user's own text (quoted names, paths) as it is."""

from jobplane.client.flags import in_flags

FIELDS = {"uses": "--uses", "ttl_seconds": "--ttl", "request_id": "--request-id", "order_by": "--sort"}


def test_the_field_a_message_starts_with_and_other_fields_it_names_become_flags():
    assert in_flags("uses: must be 0 (no limit) or more while ttl_seconds is 0", FIELDS) == \
        "--uses: must be 0 (no limit) or more while --ttl is 0"


def test_a_quoted_name_or_a_path_that_holds_a_field_name_is_left_as_it_is():
    assert in_flags("view 'order_by' has no filter; ttl_seconds is unset", FIELDS) == \
        "view 'order_by' has no filter; --ttl is unset"
    assert in_flags('cannot read "my order_by.yaml"', FIELDS) == 'cannot read "my order_by.yaml"'
    assert in_flags("cannot read /tmp/request_id/job.yaml: no such file", FIELDS) == \
        "cannot read /tmp/request_id/job.yaml: no such file"
