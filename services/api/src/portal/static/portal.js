// nmp portal: the little script the pages use. Served by nmp itself; the pages work without it.
