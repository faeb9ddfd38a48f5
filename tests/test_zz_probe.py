from tests.test_run_workflow import *  # noqa
from tests.test_run_workflow import env  # noqa

async def test_probe(env):
    rec = Recorder(turns=[ApplicationError("Slow down", type="RateLimited") for _ in range(200)])
    retry = RetrySettings(maximum_attempts=0)
    async with started_run(env, rec, retry) as run:
        r = await run.handle.result()
        print("RESULT", r, len(rec.inputs("model_turn")), rec.inputs("finish_run"))
        print((await env.get_current_time()).timestamp() - run.expires_at)
        async for e in run.handle.fetch_history_events():
            if e.HasField("activity_task_failed_event_attributes") or e.HasField("activity_task_timed_out_event_attributes"):
                print(e)
