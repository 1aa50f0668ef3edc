from helpers import count_events


def test_lifecycle_through_cli(home, cli):
    assert cli("spawn", "w-1", "--task", "t").exit_code == 0
    assert cli("--as", "a1", "start", "w-1").exit_code == 0
    r = cli("status", "--json")
    assert r.json()[0]["state"] == "WORKING"
    assert count_events(home) == 2
