"""Job results and jobs: the ``kiosk_mysql`` returner's durable ``spool``, its
``writer`` and the job ``cache`` reads, and unit-split ``tasks``."""
