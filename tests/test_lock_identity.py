"""One restore per target: the restore lock follows the target's real identity, not its URL's spelling."""

from __future__ import annotations

from pathlib import Path

import pytest

from enigm_recover.errors import RestoreRefused
from enigm_recover.state.stores import open_store


def _refused(holder_url: str, other_url: str) -> bool:
    """Whether ``other_url`` is refused its restore lock while ``holder_url``'s is held."""
    with open_store(holder_url) as holder:
        holder.lock_restores()
        with open_store(other_url) as other:
            try:
                other.lock_restores()
            except RestoreRefused:
                return True
            return False


def test_a_symlink_to_the_database_reaches_the_same_lock(drill, tmp_path: Path) -> None:
    real = Path(drill.target.removeprefix("sqlite:///"))
    link = tmp_path / "alias.db"
    link.symlink_to(real)
    assert _refused(drill.target, f"sqlite:///{link}")
    assert _refused(f"sqlite:///{link}", drill.target)


def test_a_symlinked_folder_and_dot_dot_reach_the_same_lock(drill, tmp_path: Path) -> None:
    real = Path(drill.target.removeprefix("sqlite:///"))
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    (elsewhere.parent / real.name).symlink_to(real)  # the link sits where "deeper/.." leads
    via_folder = tmp_path / "folder"
    via_folder.symlink_to(elsewhere)
    spelled = f"sqlite:///{via_folder}/../{real.name}"  # folder/.. is elsewhere/, physically
    assert _refused(drill.target, spelled)
    assert _refused(spelled, drill.target)


def test_a_relative_spelling_reaches_the_same_lock(drill, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path(drill.target.removeprefix("sqlite:///"))
    monkeypatch.chdir(real.parent)
    assert _refused(drill.target, f"sqlite:///./{real.name}")
    assert _refused(f"sqlite:///{real.name}", drill.target)


def test_a_restore_through_a_symlink_is_refused_while_another_holds_the_target(drill, cli, tmp_path: Path) -> None:
    from tests.test_restore import restore

    link = tmp_path / "alias.db"
    link.symlink_to(Path(drill.target.removeprefix("sqlite:///")))
    with open_store(drill.target) as holder:
        holder.lock_restores()
        code, _, err = restore(cli, drill, f"sqlite:///{link}", "--yes")
    assert code == 17 and "is running right now" in err
    assert restore(cli, drill, f"sqlite:///{link}", "--yes")[0] == 0


def test_two_sqlite_databases_do_not_block_each_other(drill, tmp_path: Path) -> None:
    from tests.postgres import copy_store

    other = tmp_path / "other.db"
    copy_store(drill.target, f"sqlite:///{other}")
    assert not _refused(drill.target, f"sqlite:///{other}")


def _spellings(cluster, dbname: str) -> list[str]:
    return [
        f"postgresql://{cluster.superuser}@127.0.0.1:{cluster.port}/{dbname}",
        f"postgresql://{cluster.superuser}@localhost:{cluster.port}/{dbname}",
        f"postgres://{cluster.superuser}@localhost/{dbname}?port={cluster.port}&application_name=other",
        f"postgresql://@/{dbname}?host=127.0.0.1&port={cluster.port}",  # user from PGUSER
        f"postgresql://{cluster.superuser}@/{dbname}?host={cluster.socket_dir}&port={cluster.port}",
    ]


@pytest.fixture
def postgres_target(drill, postgres_url: str) -> str:
    """The drill's live data in a database of the session's PostgreSQL cluster."""
    from tests.postgres import copy_store

    copy_store(drill.target, postgres_url)
    return postgres_url


def test_every_spelling_of_one_postgres_database_takes_one_lock(postgres_cluster, postgres_target, monkeypatch) -> None:
    live_target = postgres_target
    monkeypatch.setenv("PGUSER", postgres_cluster.superuser)
    urls = _spellings(postgres_cluster, live_target.rsplit("/", 1)[1])
    for holder in urls:
        for other in urls:
            assert _refused(holder, other), (holder, other)


def test_two_databases_of_one_cluster_do_not_block_each_other(postgres_cluster, postgres_target) -> None:
    from tests.postgres import copy_store

    live_target = postgres_target
    other = postgres_cluster.create_database()
    try:
        other_url = postgres_cluster.url_for(other).replace("127.0.0.1", "localhost")
        copy_store(live_target, other_url)
        assert not _refused(live_target, other_url)
    finally:
        postgres_cluster.drop_database(other)
