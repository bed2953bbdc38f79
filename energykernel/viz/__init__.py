"""Every figure and the HTML report (matplotlib's ``Figure``, never pyplot; imported lazily)."""
