"""The ingest password check (passwords.IngestPasswordCheck) with a record store in memory: the
keyed hash, the copy and when it is read again, the look-ups shared by many wrong guesses."""
from __future__ import annotations

import asyncio
import threading

from cryptography.fernet import Fernet

from photoslot import passwords


def store(password: str):
    """A settings.key, a stored record for `password`, and the functions the check is given."""
    kid, key = passwords.derive_key(Fernet.generate_key())
    state = {"record": passwords.keyed_record(password, kid, key, sealed="not-read-here"), "reads": 0,
             "generation": 0}

    async def load():
        state["reads"] += 1
        await asyncio.sleep(0.01)  # a round trip
        return state["record"]

    async def upgrade(_password, _old):
        raise AssertionError("a keyed record is never re-keyed")

    check = passwords.IngestPasswordCheck(load, lambda: {kid: key}, upgrade, lambda: state["generation"],
                                          refresh_seconds=60)
    return check, state, kid, key


async def test_the_right_password_matches_and_a_wrong_one_does_not():
    check, state, _, _ = store("booth-secret-1")
    loop = asyncio.get_running_loop()
    assert await check.check("booth-secret-1", arrived=loop.time())
    assert not await check.check("booth-secret-2", arrived=loop.time())
    assert not await check.check("", arrived=loop.time())


async def test_a_thousand_wrong_guesses_at_once_share_a_few_look_ups_and_all_end():
    check, state, _, _ = store("booth-secret-1")
    loop = asyncio.get_running_loop()
    await check.current()
    reads = state["reads"]
    guesses = [check.check(f"guess-{n}", arrived=loop.time()) for n in range(1000)]
    results = await asyncio.wait_for(asyncio.gather(*guesses), 5)  # a busy loop would never end
    assert not any(results)
    assert state["reads"] - reads <= 2  # one look-up after they arrived, shared by all


async def test_a_password_changed_elsewhere_is_accepted_at_once_and_the_old_one_refused_after_a_notice():
    check, state, kid, key = store("old-password-1")
    loop = asyncio.get_running_loop()
    assert await check.check("old-password-1", arrived=loop.time())
    state["record"] = passwords.keyed_record("new-password-1", kid, key, sealed="x")  # another process
    await asyncio.sleep(0.02)
    assert await check.check("new-password-1", arrived=loop.time())  # a miss looks again: never refused
    state["record"] = passwords.keyed_record("newer-password", kid, key, sealed="x")
    assert await check.matches("new-password-1")  # the copy, until told
    state["generation"] += 1  # NOTIFY photoslot_ingest_password
    assert not await check.matches("new-password-1")


async def test_a_record_made_with_a_key_this_data_dir_lacks_matches_nothing():
    check, state, _, _ = store("booth-secret-1")
    other_kid, other_key = passwords.derive_key(Fernet.generate_key())
    state["record"] = passwords.keyed_record("booth-secret-1", other_kid, other_key, sealed="x")
    state["generation"] += 1
    assert not await check.matches("booth-secret-1")


def test_the_keyed_hash_depends_on_the_key_and_the_kid_tells_nothing_of_it():
    k1, k2 = Fernet.generate_key(), Fernet.generate_key()
    (kid1, key1), (kid2, key2) = passwords.derive_key(k1), passwords.derive_key(k2)
    assert kid1 != kid2 and passwords.derive_key(k1) == (kid1, key1)
    assert passwords.keyed_hash("x" * 12, key1) != passwords.keyed_hash("x" * 12, key2)
    assert kid1 not in k1.decode() and len(kid1) == 12


def test_a_guess_arriving_as_a_look_up_ends_waits_and_never_spins():
    """A request whose turn comes after a look-up finished but before the one who started it woke
    up (a booth's data was ready first): it must wait its turn, not spin on the finished look-up
    holding the event loop (it froze `serve` once). Run on a loop of its own, with a deadline from
    outside: a spinning loop cannot time itself out."""
    outcome = {}

    async def scenario():
        check, state, _, _ = store("booth-secret-1")
        loop = asyncio.get_running_loop()
        await check.current()
        late = []

        async def load_and_let_one_in():
            state["reads"] += 1
            await asyncio.sleep(0.01)
            # scheduled before this look-up's own wake-ups: a guess that arrives right now
            loop.call_soon(lambda: late.append(asyncio.ensure_future(check.check("late-guess", arrived=loop.time()))))
            return state["record"]

        check._load = load_and_let_one_in
        first = await check.check("first-guess", arrived=loop.time())
        outcome["results"] = [first, await asyncio.wait_for(late[0], 2)]

    runner = threading.Thread(target=lambda: asyncio.run(scenario()), daemon=True)
    runner.start()
    runner.join(10)
    assert not runner.is_alive(), "the password check spun on a finished look-up"
    assert outcome["results"] == [False, False]
