"""Privacy, retention and limits: retiring learners from everything already published
(`trackpipe forget`), expiring old days (`trackpipe expire`), and the retired-users list a run
reads. The rules themselves (who is retired, pseudonyms) are in trackpipe.events."""
