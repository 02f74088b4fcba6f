"""A broker that cannot be reached is reported, not retried in silence (issue 11 item 14)."""

import logging
import time

from cloud_sync.fleet.localbroker import free_port
from cloud_sync.mqtt_client import LinkSettings, MqttLink


def test_an_unreachable_broker_is_logged_while_the_link_keeps_retrying(caplog):
    settings = LinkSettings(host="127.0.0.1", port=free_port(), client_id="unreachable-test",
                            reconnect_min_s=0.1, reconnect_max_s=0.5)
    link = MqttLink(settings)
    with caplog.at_level(logging.WARNING, logger="cloud_sync.mqtt_client"):
        link.start()
        deadline = time.monotonic() + 10
        while link.connect_failures < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        link.stop()
    assert link.connect_failures >= 2                      # still retrying
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1                              # one line, not one per attempt
    assert f"{warnings[0].host}:{warnings[0].port}" == f"127.0.0.1:{settings.port}"
