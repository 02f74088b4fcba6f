"""Drive a real Speaker in its own process (PortAudio reads the ALSA setup once per process).

    python tests/audio_scenario.py CONFIG.toml      then one command per line on stdin:
    ready | start | seen ID TEXT | gone ID | wait-spoken N | wait-wearer | wait-idle | metrics |
    quit
Each command answers one JSON line on stdout (with the last playback's start and every fade
the speaker asked the player for, both on time.monotonic()); logs go to stderr.
"""

import json
import logging
import sys
import time

from device import config
from device.audio.speaker import build_speaker
from device.metrics import Metrics


def wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")
    cfg = config.load(sys.argv[1])
    metrics = Metrics()
    started = time.monotonic()
    speaker = build_speaker(cfg, metrics)
    build_s = time.monotonic() - started

    def idle() -> bool:
        return speaker._playing is None and not speaker._queue

    ducks: list[tuple[float, float]] = []     # (time.monotonic(), gain) of each fade asked for
    if speaker is not None and speaker.player is not None:
        fade = speaker.player.duck

        def recorded_duck(gain: float) -> None:
            ducks.append((time.monotonic(), gain))
            fade(gain)
        speaker.player.duck = recorded_duck

    for line in sys.stdin:
        command, _, rest = line.strip().partition(" ")
        answer: dict = {}
        if command == "ready":
            answer = {"speaker": speaker is not None, "build_s": round(build_s, 3)}
            if speaker is not None:
                answer.update(player=speaker.player is not None,
                              listener=speaker.listener is not None, vad=speaker.vad.engine)
        elif command == "start":
            speaker.start()
        elif command == "seen":
            region, _, text = rest.partition(" ")
            speaker.seen(int(region), text, "model")
            answer = {"t": time.monotonic()}
        elif command == "gone":
            speaker.gone(int(rest))
        elif command == "wait-spoken":
            answer = {"ok": wait_until(lambda: metrics.counter("audio_spoken") >= int(rest)
                                       and idle())}
        elif command == "wait-wearer":
            answer = {"ok": speaker.wearer_speaking.wait(20), "t": time.monotonic()}
        elif command == "wait-idle":
            answer = {"ok": wait_until(idle)}
        elif command == "quit":
            break
        if speaker is not None:
            answer["last_started"] = speaker.last_started
            answer["ducks"] = ducks
        answer["metrics"] = metrics.snapshot()
        print(json.dumps(answer), flush=True)
    if speaker is not None:
        speaker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
