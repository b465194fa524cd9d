"""Power on the master of masters: Wake-on-LAN and shutdown actions with their
events (``actions``), rule windows (``rules``), the plan they make
(``schedule``), the APScheduler engine that executes it (``engine``) and the
nmap verification sweeps after each event (``verify``)."""
