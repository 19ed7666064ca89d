"""AVA evaluation: official CSV I/O (`ava_csv`), frame-mAP with the official protocol
(`frame_map`), person-box AP (`person_ap`) and reports (`report`)."""
