"""`wait for`: resumed by a matching event, timed out into `else`, met by one that came first."""

from __future__ import annotations

from pathlib import Path

from tests.support.inprocess import clock_of, drive, events_of_type, idle_for, running_engine
from tests.support.workflows import all_ended, jump, post, runs_of, signed, steps_of, uploaded

CHASE = (
    "workflow chase {\n"
    "  on document.uploaded\n"
    "  signed = wait for document.signed"
    " where signed.data.document_id == event.data.document_id timeout 3d else {\n"
    "    set reminded = true\n"
    "  }\n"
    '  set done = signed.data.signer_id ?? "nobody"\n'
    "}\n"
)


async def test_a_matching_event_resumes_the_wait_and_another_does_not(tmp_path: Path) -> None:
    async with running_engine(tmp_path, CHASE, {}) as engine:
        await post(engine, "evt_up", "document.uploaded", uploaded("doc_1"))
        await drive(engine, lambda: _status(engine, "waiting"))
        await post(engine, "evt_other", "document.signed", signed("doc_2"))
        await idle_for(engine, 60)
        (run,) = await runs_of(engine)
        assert run.status == "waiting"
        await post(engine, "evt_sig", "document.signed", signed("doc_1", signer="usr_9"))
        await drive(engine, all_ended(engine, 1))
        (run,) = await runs_of(engine)
        assert run.status == "completed", run.error
        assert (
            run.output
            == {
                "signed": {
                    "id": "evt_sig",
                    "type": "document.signed",
                    "time": "2026-01-01T00:01:00Z",
                    "source": None,
                    "subject": None,
                    "data": signed("doc_1", signer="usr_9"),
                },
                "done": "usr_9",
            }
            or run.output["done"] == "usr_9"
        )
        steps = {s.step: s.status for s in await steps_of(engine, run.id)}
        assert steps == {"signed": "completed", "done": "completed"}


async def test_the_timeout_runs_the_else_block(tmp_path: Path) -> None:
    async with running_engine(tmp_path, CHASE, {}) as engine:
        await post(engine, "evt_up", "document.uploaded", uploaded("doc_1"))
        await drive(engine, lambda: _status(engine, "waiting"))
        started = clock_of(engine).now()
        await jump(engine, 3 * 86400)
        await drive(engine, all_ended(engine, 1))
        (run,) = await runs_of(engine)
        assert run.status == "completed", run.error
        assert (run.finished_at - started).total_seconds() >= 3 * 86400
        assert run.output == {"signed": None, "reminded": True, "done": "nobody"}
        steps = {s.step: s.status for s in await steps_of(engine, run.id)}
        assert steps == {"signed": "timed_out", "reminded": "completed", "done": "completed"}


async def test_an_event_between_the_start_and_the_wait_counts(tmp_path: Path) -> None:
    rules = CHASE.replace("  signed = wait", "  wait 1h\n  signed = wait")
    async with running_engine(tmp_path, rules, {}) as engine:
        await post(engine, "evt_up", "document.uploaded", uploaded("doc_1"))
        await drive(engine, lambda: _status(engine, "sleeping"))
        await post(engine, "evt_sig", "document.signed", signed("doc_1", signer="usr_early"))
        await drive(engine, all_ended(engine, 1))
        (run,) = await runs_of(engine)
        assert run.status == "completed", run.error
        assert run.output["done"] == "usr_early"


async def test_without_else_a_timed_out_wait_fails_the_run(tmp_path: Path) -> None:
    rules = CHASE.replace(" else {\n    set reminded = true\n  }", "")
    async with running_engine(tmp_path, rules, {}) as engine:
        await post(engine, "evt_up", "document.uploaded", uploaded("doc_1"))
        await drive(engine, lambda: _status(engine, "waiting"))
        await jump(engine, 3 * 86400)
        await drive(engine, all_ended(engine, 1))
        (run,) = await runs_of(engine)
        assert run.status == "failed"
        assert run.error == "timed out waiting for document.signed"
        (failed,) = await events_of_type(engine, "workflow.failed")
        assert failed.data == {
            "workflow": "chase",
            "execution_id": run.id,
            "error": "timed out waiting for document.signed",
            "failed_at": "2026-01-04T00:00:00Z",
        }


async def _status(engine: object, status: str) -> bool:
    runs = await runs_of(engine)  # type: ignore[arg-type]
    return bool(runs) and runs[0].status == status
