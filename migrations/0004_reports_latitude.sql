-- Place filters scan the reports in a latitude band (searches with a place filter are exact).
CREATE INDEX reports_latitude_idx ON reports (latitude) WHERE latitude IS NOT NULL;
