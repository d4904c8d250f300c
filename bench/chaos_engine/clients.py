"""The chaos run's clients: what they do and what each recorded.

- Submitters, one per account: every submit carries an Idempotency-Key and is retried with the
  same key after a 503, a proxy error or a cut connection, until it gets an answer; some are sent
  again after success (the answer must be the same operation). Some ask for a simulated safety
  block (failed, refunded) and some are cancelled (refunded) to exercise both refund paths.
- Pollers read random operations through the proxy; once one has a final status it never changes.
- Account-stream subscribers: on every API replica directly and through the proxy, resuming with
  Last-Event-ID after every cut (faults, and cuts of their own now and then).
- Operation-stream followers for some operations, through the proxy, also resuming.
Every HTTP answer is kept (time, status), for the rule "no 5xx but 503, and those near a fault".
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass, field

import httpx

MODEL = "google/veo-3.0-generate-preview"
FINAL = {"completed", "failed", "cancelled"}
RETRY_STATUSES = {429, 502, 503, 504}
# A submit still refused after this long is given up (and reported), so a run always ends.
SUBMIT_PATIENCE_SECONDS = 60.0


@dataclass
class Account:
    id: str
    key: str
    start_balance_cents: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "X-App-ID": "chaos"}


@dataclass
class Submit:
    account: str
    key: str
    op_id: str | None = None
    attempts: int = 0
    answers: list[int] = field(default_factory=list)  # statuses of its attempts, 0: no answer
    replay_ids: list[str] = field(default_factory=list)  # answers to repeats after success


@dataclass
class Subscriber:
    name: str
    account: Account
    base_url: str
    seqs: list[int] = field(default_factory=list)
    connects: int = 0

    @property
    def last(self) -> int:
        return self.seqs[-1] if self.seqs else 0


@dataclass
class Records:
    answers: list[tuple[float, int, str]] = field(default_factory=list)  # (time, status, what)
    start_balances: dict[str, int] = field(default_factory=dict)
    submits: list[Submit] = field(default_factory=list)
    final_seen: dict[str, str] = field(default_factory=dict)  # op id -> first final status polled
    poll_regressions: list[str] = field(default_factory=list)
    subscribers: list[Subscriber] = field(default_factory=list)
    op_streams: dict[str, list[int]] = field(default_factory=dict)
    op_stream_problems: list[str] = field(default_factory=list)

    def answer(self, status: int, what: str) -> None:
        self.answers.append((time.monotonic(), status, what))


class Load:
    def __init__(self, proxy_url: str, replica_urls: list[str], accounts: list[Account], rate: float) -> None:
        self.proxy_url = proxy_url
        self.replica_urls = replica_urls
        self.accounts = accounts
        self.rate = rate  # submits per second per account
        self.records = Records()
        self.stopping = asyncio.Event()
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(30, connect=3), limits=httpx.Limits(max_connections=400)
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._streams: list[asyncio.Task[None]] = []

    def start(self, pollers: int = 3) -> None:
        for account in self.accounts:
            self._tasks.append(asyncio.create_task(self._submitter(account)))
            for base in [self.proxy_url, *self.replica_urls]:
                subscriber = Subscriber(f"{account.id}@{base}", account, base)
                self.records.subscribers.append(subscriber)
                self._streams.append(asyncio.create_task(self._subscribe(subscriber)))
        for _ in range(pollers):
            self._tasks.append(asyncio.create_task(self._poller()))

    async def stop_submitting(self) -> None:
        self.stopping.set()
        await asyncio.gather(*self._tasks)

    async def close(self) -> None:
        for task in self._streams:
            task.cancel()
        await asyncio.gather(*self._streams, return_exceptions=True)
        await self.http.aclose()

    async def _call(self, method: str, url: str, what: str, **kwargs: object) -> httpx.Response | None:
        try:
            response = await self.http.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError:
            self.records.answer(0, what)  # 0: no answer (a cut or refused connection)
            return None
        self.records.answer(response.status_code, what)
        return response

    async def _submitter(self, account: Account) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            prompt = f"chaos {account.id} #{n}"
            if n % 10 == 0:
                prompt += " #simulate-safety-block"
            submit = Submit(account.id, uuid.uuid4().hex)
            self.records.submits.append(submit)
            await self._submit(account, submit, prompt)
            if submit.op_id is not None:
                if n % 5 == 0:  # the same request again: the same operation, nothing charged
                    await self._submit(account, submit, prompt, replay=True)
                if n % 4 == 0:
                    self._streams.append(asyncio.create_task(self._follow(account, submit.op_id)))
                if n % 7 == 0:
                    await self._call(
                        "POST", f"{self.proxy_url}/v1/video/generations/{submit.op_id}/cancel", "cancel",
                        headers=account.headers,
                    )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), random.expovariate(self.rate))

    async def _submit(self, account: Account, submit: Submit, prompt: str, replay: bool = False) -> None:
        body = {"model": MODEL, "prompt": prompt, "parameters": {"aspectRatio": "16:9"}}
        headers = {**account.headers, "Idempotency-Key": submit.key}
        delay = 0.1
        give_up = time.monotonic() + SUBMIT_PATIENCE_SECONDS
        while time.monotonic() < give_up:
            submit.attempts += 1
            url = f"{self.proxy_url}/v1/video/generations"
            response = await self._call("POST", url, "submit", json=body, headers=headers)
            submit.answers.append(0 if response is None else response.status_code)
            if response is not None and response.status_code == 200:
                op_id = response.json()["id"]
                if replay:
                    submit.replay_ids.append(op_id)
                else:
                    submit.op_id = op_id
                return
            if response is not None and response.status_code not in RETRY_STATUSES:
                raise AssertionError(f"submit answered {response.status_code}: {response.text}")
            retry_after = response.headers.get("retry-after") if response is not None else None
            await asyncio.sleep(max(float(retry_after or 0), delay))
            delay = min(delay * 2, 2.0)
        # Left without an answer (op_id None): the checks report it as lost.

    async def _poller(self) -> None:
        while not self.stopping.is_set():
            await asyncio.sleep(0.15)
            known = [s for s in self.records.submits if s.op_id is not None]
            if not known:
                continue
            submit = random.choice(known)
            account = next(a for a in self.accounts if a.id == submit.account)
            url = f"{self.proxy_url}/v1/video/generations/{submit.op_id}"
            response = await self._call("GET", url, "poll", headers=account.headers)
            if response is None or response.status_code != 200:
                continue
            status = response.json()["status"]
            seen = self.records.final_seen.get(submit.op_id or "")
            if seen is not None and status != seen:
                self.records.poll_regressions.append(f"{submit.op_id}: {seen} then {status}")
            elif status in FINAL:
                self.records.final_seen[submit.op_id or ""] = status

    async def _subscribe(self, subscriber: Subscriber) -> None:
        """Follow the account stream forever, resuming after each cut with Last-Event-ID."""
        url = f"{subscriber.base_url}/v1/video/events"
        while True:
            headers = {**subscriber.account.headers, "Last-Event-ID": str(subscriber.last)}
            subscriber.connects += 1
            cut_after = random.uniform(5, 15)  # a cut of our own, on top of the faults
            try:
                async with asyncio.timeout(cut_after):
                    await self._read_stream(url, headers, subscriber.seqs, "account stream")
            except (httpx.HTTPError, TimeoutError):
                pass
            await asyncio.sleep(0.2)

    async def _read_stream(self, url: str, headers: dict[str, str], seqs: list[int], what: str) -> bool:
        """Read events into `seqs` until the stream ends; True if it ended normally (or 204)."""
        timeout = httpx.Timeout(30, connect=3, read=10)  # heartbeats are far more frequent
        async with self.http.stream("GET", url, headers=headers, timeout=timeout) as response:
            self.records.answer(response.status_code, what)
            if response.status_code == 204:
                return True
            if response.status_code != 200:
                await response.aread()
                return False
            event_id: str | None = None
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line == "" and event_id is not None:
                    seqs.append(int(event_id))
                    event_id = None
            return True

    async def _follow(self, account: Account, op_id: str) -> None:
        seqs: list[int] = []
        self.records.op_streams[op_id] = seqs
        url = f"{self.proxy_url}/v1/video/generations/{op_id}/events"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            headers = {**account.headers, "Last-Event-ID": str(seqs[-1] if seqs else 0)}
            try:
                if await self._read_stream(url, headers, seqs, "operation stream"):
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        self.records.op_stream_problems.append(f"{op_id}: the operation stream never ended")
